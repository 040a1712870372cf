//! Token verification (SPEC §4) on arbitrary input: it must never panic and never
//! accept a token it did not sign. Inputs are also spliced onto a real token's
//! header or signature so the fuzzer reaches the claim checks.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use passport::ids::SessionId;
use passport::tokens::KeyRing;

const NOW: i64 = 1_900_000_000;

fn ring() -> &'static (KeyRing, String) {
    static RING: OnceLock<(KeyRing, String)> = OnceLock::new();
    RING.get_or_init(|| {
        let ring = KeyRing::new(&[b"fuzzing-secret-fuzzing-secret-0123".to_vec()], "passport".into(), 30, 86_400);
        let claims = ring.claims_for(1, &SessionId([7; 16]), NOW, NOW);
        let token = ring.sign(&claims).unwrap();
        (ring, token)
    })
}

fuzz_target!(|data: &[u8]| {
    let (ring, real) = ring();
    let text = String::from_utf8_lossy(data);
    if let Ok(v) = ring.verify(&text, NOW) {
        // Only our own token can verify; a mutation that still verifies must carry
        // exactly the signed claims.
        assert_eq!((v.user_id, v.session_id, v.login_time), (1, SessionId([7; 16]), NOW));
    }
    let (head, rest) = real.split_once('.').unwrap();
    let (payload, _sig) = rest.split_once('.').unwrap();
    let spliced = [format!("{text}.{payload}.{}", rest.rsplit('.').next().unwrap()), format!("{head}.{payload}.{text}")];
    for t in &spliced {
        if let Ok(v) = ring.verify(t, NOW) {
            assert_eq!(v.user_id, 1);
        }
    }
});
