//! The server's keyed digests: HMAC-SHA256 over some parts, and the check of a
//! presented value's digest under every key of the ring (a digest made before a
//! signing key was added still matches). Refresh tokens, stream keys, play tickets
//! and the keys derived from the signing secrets all use these two.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

/// HMAC-SHA256 under `key` of `parts`, one after the other.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `stored` is what `digest_under` makes under some key of `keys`. Every
/// key is tried and compared in constant time, so the answer's timing says nothing
/// of which key, or how much of a digest, matched.
pub fn matches_any<const N: usize>(
    keys: &[[u8; 32]],
    stored: &[u8; N],
    digest_under: impl Fn(&[u8; 32]) -> [u8; N],
) -> bool {
    let mut matched = Choice::from(0);
    for key in keys {
        matched |= digest_under(key).ct_eq(stored);
    }
    matched.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_one_message_and_any_ring_key_matches() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(hmac(&a, &[b"ab", b"c"]), hmac(&a, &[b"abc"]));
        assert_ne!(hmac(&a, &[b"abc"]), hmac(&b, &[b"abc"]));
        let stored = hmac(&b, &[b"x"]);
        assert!(matches_any(&[a, b], &stored, |k| hmac(k, &[b"x"])));
        assert!(!matches_any(&[a], &stored, |k| hmac(k, &[b"x"])));
        assert!(!matches_any(&[a, b], &stored, |k| hmac(k, &[b"y"])));
    }
}
