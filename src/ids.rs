//! Identifiers that travel between layers: a session's id is named by tokens, the
//! stores, the audit log and the wire alike.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// A session id: 128 random bits, base64url (22 characters) on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    pub fn random() -> SessionId {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).expect("the OS random source is available");
        SessionId(b)
    }

    pub fn parse(s: &str) -> Option<SessionId> {
        if s.len() != 22 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        Some(SessionId(bytes.try_into().ok()?))
    }

    pub fn from_slice(b: &[u8]) -> Option<SessionId> {
        Some(SessionId(b.try_into().ok()?))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.encode())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_round_trips_and_refuses_other_lengths() {
        let sid = SessionId::random();
        assert_eq!(SessionId::parse(&sid.encode()), Some(sid));
        assert_eq!(SessionId::parse("short"), None);
        assert_eq!(SessionId::from_slice(&[0u8; 15]), None);
    }
}
