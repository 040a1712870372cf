//! Property tests: tokens, headers and password hashes round-trip, and tampering
//! never yields different claims.

use passport::credentials::{self, Scheme};
use passport::ids::SessionId;
use passport::refresh::RefreshToken;
use passport::tokens::KeyRing;
use proptest::prelude::*;

fn ring() -> KeyRing {
    KeyRing::new(
        &[b"property-test-secret-0123456789abcdef".to_vec()],
        "passport".into(),
        30,
        86_400,
    )
}

proptest! {
    #[test]
    fn tokens_round_trip(user_id in any::<i64>(), sid in any::<[u8; 16]>(), login_time in 0i64..4_000_000_000, age in 0i64..86_000) {
        let ring = ring();
        let sid = SessionId(sid);
        let claims = ring.claims_for(user_id, &sid, login_time, login_time);
        let token = ring.sign(&claims).unwrap();
        let v = ring.verify(&token, login_time + age).unwrap();
        prop_assert_eq!((v.user_id, v.session_id, v.login_time, v.exp), (user_id, sid, login_time, claims.exp));
    }

    #[test]
    fn a_tampered_token_never_verifies_to_other_claims(user_id in any::<i64>(), index in any::<prop::sample::Index>(), byte in 0x21u8..0x7f) {
        let ring = ring();
        let sid = SessionId([3; 16]);
        let token = ring.sign(&ring.claims_for(user_id, &sid, 1_900_000_000, 1_900_000_000)).unwrap();
        let mut bytes = token.clone().into_bytes();
        let i = index.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let tampered = String::from_utf8(bytes).unwrap();
        if let Ok(v) = ring.verify(&tampered, 1_900_000_000) {
            prop_assert_eq!((v.user_id, v.session_id), (user_id, sid));
        }
    }

    #[test]
    fn authorization_headers_round_trip(bearer in any::<bool>(), upper in any::<bool>(), token in "[A-Za-z0-9._~+/=-]{1,200}") {
        let scheme = if bearer { Scheme::Bearer } else { Scheme::Jwt };
        let word = if upper { scheme.as_str().to_uppercase() } else { scheme.as_str().to_lowercase() };
        let header = format!("{word} {token}");
        prop_assert_eq!(credentials::parse(Some(header.as_bytes())).unwrap(), (scheme, token.as_str()));
    }

    #[test]
    fn refresh_tokens_round_trip(user_id in any::<i64>(), sid in any::<[u8; 16]>(), steps in 0usize..5) {
        let key = [9u8; 32];
        let mut t = RefreshToken::first(user_id, SessionId(sid));
        for _ in 0..steps {
            t = t.successor(&key);
        }
        prop_assert_eq!(t.generation, steps as i64);
        prop_assert_eq!(RefreshToken::parse(&t.encode()), Some(t));
    }

    #[test]
    fn werkzeug_pbkdf2_hashes_round_trip(password in "\\PC{1,40}", salt in "[A-Za-z0-9]{1,16}", iterations in 1u32..50) {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut out);
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        let stored = format!("pbkdf2:sha256:{iterations}${salt}${hex}");
        prop_assert!(passport::legacy_hashes::is_supported(&stored));
        prop_assert!(passport::passwords::verify_blocking(password.as_bytes(), &stored));
        let other = format!("{password}!");
        prop_assert!(!passport::passwords::verify_blocking(other.as_bytes(), &stored));
    }
}

proptest! {
    // Each Argon2id hash costs 19 MiB and tens of milliseconds: a few cases suffice.
    #![proptest_config(ProptestConfig::with_cases(6))]
    #[test]
    fn argon2id_hashes_round_trip(password in "\\PC{0,64}") {
        let stored = passport::passwords::hash_blocking(password.as_bytes()).unwrap();
        prop_assert!(!passport::passwords::needs_rehash(&stored));
        prop_assert!(passport::passwords::verify_blocking(password.as_bytes(), &stored));
        let other = format!("{password}x");
        prop_assert!(!passport::passwords::verify_blocking(other.as_bytes(), &stored));
    }
}
