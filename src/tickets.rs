//! Play tickets (SPEC §11): what a player puts in a stream URL in place of the
//! `Authorization` header it cannot send.
//!
//! A ticket reads `<user id>.<session id>.<login time>.<expires at>.<mac>`: at most
//! 19 + 22 + 20 + 20 + 22 + 4 = 107 URL-safe bytes. The MAC (HMAC-SHA256 cut to 128
//! bits, under a key derived from the signing key) covers the stream's name and
//! creation time too, so a ticket opens one stream only, and not one created later
//! under the same name. Nothing is stored: the session it names must
//! still be live when the ticket is used, which the caller checks.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::ids::SessionId;
use crate::keyed;
use crate::tokens::KeyRing;

/// The longest ticket accepted: nginx-rtmp cuts a stream's arguments at 256 bytes.
pub const MAX_TICKET_LEN: usize = 128;

/// What a valid ticket says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub user_id: i64,
    pub session_id: SessionId,
    pub login_time: i64,
    pub expires_at: i64,
}

/// The stream a ticket is for: its name and when it was created.
#[derive(Clone, Copy, Debug)]
pub struct For<'a> {
    pub name: &'a str,
    pub created_at: i64,
}

fn mac(key: &[u8; 32], stream: For<'_>, t: &Ticket) -> [u8; 16] {
    // Lengths first, so that no two (stream, fields) give the same input.
    let full = keyed::hmac(
        key,
        &[
            &(stream.name.len() as u64).to_be_bytes(),
            stream.name.as_bytes(),
            &stream.created_at.to_be_bytes(),
            &t.user_id.to_be_bytes(),
            &t.session_id.0,
            &t.login_time.to_be_bytes(),
            &t.expires_at.to_be_bytes(),
        ],
    );
    full[..16].try_into().expect("16 of 32 bytes")
}

impl Ticket {
    /// The ticket's text for `stream`, signed with the ring's current key.
    pub fn encode(&self, keys: &KeyRing, stream: For<'_>) -> String {
        let tag = mac(&keys.ticket_keys()[0], stream, self);
        format!(
            "{}.{}.{}.{}.{}",
            self.user_id,
            self.session_id.encode(),
            self.login_time,
            self.expires_at,
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The ticket `text` carries, if it was made for `stream` by a key of the ring.
    /// Its expiry is the caller's to judge (an update ignores it).
    pub fn verify(keys: &KeyRing, stream: For<'_>, text: &str) -> Option<Ticket> {
        if text.len() > MAX_TICKET_LEN {
            return None;
        }
        let mut parts = text.split('.');
        let user_id = parts.next()?.parse().ok()?;
        let session_id = SessionId::parse(parts.next()?)?;
        let login_time = parts.next()?.parse().ok()?;
        let expires_at = parts.next()?.parse().ok()?;
        let tag = parts.next()?;
        if parts.next().is_some() || tag.len() != 22 {
            return None;
        }
        let mut given = [0u8; 16];
        if URL_SAFE_NO_PAD.decode_slice(tag, &mut given).ok()? != 16 {
            return None;
        }
        let ticket = Ticket {
            user_id,
            session_id,
            login_time,
            expires_at,
        };
        keyed::matches_any(keys.ticket_keys(), &given, |key| mac(key, stream, &ticket)).then_some(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: For = For {
        name: "show",
        created_at: 1_700_000_000,
    };

    fn ring(secret: &[u8]) -> KeyRing {
        KeyRing::new(&[secret.to_vec()], "passport".into(), 30, 600)
    }

    #[test]
    fn a_ticket_opens_its_own_stream_only_and_survives_a_new_signing_key() {
        let old = ring(b"ticket-test-secret-0123456789abcdef");
        let t = Ticket {
            user_id: i64::MAX,
            session_id: SessionId::random(),
            login_time: i64::MIN,
            expires_at: i64::MIN,
        };
        let text = t.encode(&old, SHOW);
        assert!(text.len() <= MAX_TICKET_LEN, "{}", text.len());
        assert!(
            text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{text}"
        );
        assert_eq!(Ticket::verify(&old, SHOW, &text), Some(t));
        let other = For { name: "other", ..SHOW };
        assert_eq!(Ticket::verify(&old, other, &text), None);
        // The same name, created again later: a stream of its own.
        let again = For {
            created_at: SHOW.created_at + 1,
            ..SHOW
        };
        assert_eq!(Ticket::verify(&old, again, &text), None);
        assert_eq!(
            Ticket::verify(&ring(b"another-secret-0123456789abcdefgh"), SHOW, &text),
            None
        );
        // A ring with a newer key still accepts tickets of the older one.
        let both = KeyRing::new(
            &[
                b"a-newer-secret-0123456789abcdefgh".to_vec(),
                b"ticket-test-secret-0123456789abcdef".to_vec(),
            ],
            "passport".into(),
            30,
            600,
        );
        assert_eq!(Ticket::verify(&both, SHOW, &text), Some(t));

        // Any changed field or a cut MAC is refused.
        let fields: Vec<&str> = text.split('.').collect();
        for i in 0..fields.len() {
            let mut changed = fields.clone();
            let replaced = if i == 1 {
                SessionId::random().encode()
            } else {
                "1".to_owned()
            };
            changed[i] = &replaced;
            assert_eq!(Ticket::verify(&old, SHOW, &changed.join(".")), None, "field {i}");
        }
        for bad in [
            "",
            "1.2.3.4.5",
            &format!("{text}.x"),
            &text[..text.len() - 1],
            &"9".repeat(200),
        ] {
            assert_eq!(Ticket::verify(&old, SHOW, bad), None, "{bad}");
        }
    }
}
