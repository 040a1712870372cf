//! The Authorization header parser (SPEC §5 step 1) on arbitrary bytes: it must
//! never panic, and whatever it accepts must be one scheme, one space, one token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passport::credentials::{self, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok((scheme, token)) = credentials::parse(Some(data)) {
        assert!(data.len() <= MAX_HEADER_LEN);
        assert!(!token.is_empty() && !token.contains(' '));
        assert_eq!(data.len(), scheme.as_str().len() + 1 + token.len());
    }
});
