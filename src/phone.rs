//! Mobile numbers, normalized to E.164 with libphonenumber's metadata (the
//! `phonenumber` crate), so that `13800000001` and `+86 138 0000 0001` are one account.

use phonenumber::country::Id;
use phonenumber::Mode;

/// Longest input looked at; no real number comes near it.
const MAX_INPUT: usize = 64;

/// The E.164 form of `input`, read in `region` unless it starts with `+`; `None`
/// unless it is a valid number of its region.
pub fn normalize(input: &str, region: Id) -> Option<String> {
    if input.len() > MAX_INPUT || input.chars().any(char::is_control) {
        return None;
    }
    let number = phonenumber::parse(Some(region), input).ok()?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    Some(number.format().mode(Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_e164() {
        assert_eq!(normalize("13800000001", Id::CN).as_deref(), Some("+8613800000001"));
        assert_eq!(
            normalize("+86 138 0000 0001", Id::CN).as_deref(),
            Some("+8613800000001")
        );
        assert_eq!(normalize("+1 650 253 0000", Id::CN).as_deref(), Some("+16502530000"));
    }

    #[test]
    fn refuses_invalid_numbers() {
        for bad in [
            "",
            "abc",
            "12345",
            "1380000000",
            "138000000011",
            "13800000001\n",
            "+86 000 0000 0000",
        ] {
            assert_eq!(normalize(bad, Id::CN), None, "{bad:?}");
        }
    }
}
