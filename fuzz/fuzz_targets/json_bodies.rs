//! The JSON request bodies and what is read out of them: every body type, the
//! mobile-number normalization and the refresh-token parser, on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passport::http::passport::{Credentials, LoginBody, PasswordBody, RefreshBody};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Credentials>(data);
    let _ = serde_json::from_slice::<LoginBody>(data);
    let _ = serde_json::from_slice::<PasswordBody>(data);
    let _ = serde_json::from_slice::<RefreshBody>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(e164) = passport::phone::normalize(text, phonenumber::country::Id::CN) {
            assert!(e164.starts_with('+'));
            // Normalizing is idempotent.
            assert_eq!(passport::phone::normalize(&e164, phonenumber::country::Id::CN).as_deref(), Some(e164.as_str()));
        }
        if let Some(t) = passport::refresh::RefreshToken::parse(text) {
            assert_eq!(passport::refresh::RefreshToken::parse(&t.encode()), Some(t));
        }
        let _ = passport::passwords::check_policy(text, 8, Some("+8613800000001"));
    }
});
