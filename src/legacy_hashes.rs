//! Password hashes from before Passport, verified so that imported users can log
//! in (and are then rehashed to the current Argon2id parameters):
//!
//! - werkzeug `pbkdf2:<sha256|sha512>:<iterations>$<salt>$<hex>` (the original Flask app)
//! - werkzeug `scrypt:<N>:<r>:<p>$<salt>$<hex>` (werkzeug's default since 3.0)
//! - bcrypt `$2a$` / `$2b$` / `$2y$` / `$2x$`
//!
//! Argon2 hashes of any parameters are PHC strings and verified by `passwords.rs`.
//! Digests are compared in constant time.

use subtle::ConstantTimeEq;

/// Upper bounds on stored work factors: a hash is data from a database, and a
/// crafted one must not make a login spin for minutes.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
const MAX_SCRYPT_LOG_N: u8 = 20;
const MAX_SCRYPT_R_P: u32 = 64;

/// The kinds of stored hash Passport can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Argon2,
    WerkzeugPbkdf2,
    WerkzeugScrypt,
    Bcrypt,
}

pub fn kind(stored: &str) -> Option<Kind> {
    if stored.starts_with("$argon2") {
        Some(Kind::Argon2)
    } else if stored.starts_with("pbkdf2:") {
        Some(Kind::WerkzeugPbkdf2)
    } else if stored.starts_with("scrypt:") {
        Some(Kind::WerkzeugScrypt)
    } else if ["$2a$", "$2b$", "$2x$", "$2y$"].iter().any(|p| stored.starts_with(p)) {
        Some(Kind::Bcrypt)
    } else {
        None
    }
}

/// True when `stored` is a well-formed hash of a kind Passport verifies (for import).
pub fn is_supported(stored: &str) -> bool {
    match kind(stored) {
        Some(Kind::Argon2) => argon2::password_hash::PasswordHash::new(stored).is_ok(),
        Some(Kind::WerkzeugPbkdf2) => parse_werkzeug(stored).and_then(|w| pbkdf2_params(&w)).is_some(),
        Some(Kind::WerkzeugScrypt) => parse_werkzeug(stored).and_then(|w| scrypt_params(&w)).is_some(),
        Some(Kind::Bcrypt) => stored.len() == 60,
        None => false,
    }
}

/// `method$salt$hex` of werkzeug.
struct Werkzeug<'a> {
    method: Vec<&'a str>,
    salt: &'a str,
    digest: Vec<u8>,
}

fn parse_werkzeug(stored: &str) -> Option<Werkzeug<'_>> {
    let mut parts = stored.split('$');
    let method = parts.next()?.split(':').collect();
    let salt = parts.next()?;
    let hex = parts.next()?;
    if parts.next().is_some() || hex.len() % 2 != 0 || hex.is_empty() {
        return None;
    }
    let digest = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Werkzeug { method, salt, digest })
}

fn pbkdf2_params(w: &Werkzeug) -> Option<(&'static str, u32)> {
    let digest = match w.method.get(1).copied() {
        Some("sha256") => "sha256",
        Some("sha512") => "sha512",
        _ => return None,
    };
    let iterations: u32 = w.method.get(2)?.parse().ok()?;
    (w.method.len() == 3 && (1..=MAX_PBKDF2_ITERATIONS).contains(&iterations)).then_some((digest, iterations))
}

fn scrypt_params(w: &Werkzeug) -> Option<scrypt::Params> {
    if w.method.len() != 4 {
        return None;
    }
    let n: u64 = w.method[1].parse().ok()?;
    let r: u32 = w.method[2].parse().ok()?;
    let p: u32 = w.method[3].parse().ok()?;
    if !n.is_power_of_two() || n < 2 || r > MAX_SCRYPT_R_P || p > MAX_SCRYPT_R_P {
        return None;
    }
    let log_n = n.trailing_zeros() as u8;
    if log_n > MAX_SCRYPT_LOG_N {
        return None;
    }
    scrypt::Params::new(log_n, r, p, w.digest.len()).ok()
}

/// Verifies a password against a non-Argon2 stored hash (blocking: this is the
/// slow part of a login). Unknown or malformed hashes verify nothing.
pub fn verify(password: &[u8], stored: &str) -> bool {
    match kind(stored) {
        Some(Kind::WerkzeugPbkdf2) => {
            let Some(w) = parse_werkzeug(stored) else { return false };
            let Some((digest, iterations)) = pbkdf2_params(&w) else {
                return false;
            };
            let mut out = vec![0u8; w.digest.len()];
            match digest {
                "sha256" => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, w.salt.as_bytes(), iterations, &mut out),
                _ => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, w.salt.as_bytes(), iterations, &mut out),
            }
            out.ct_eq(&w.digest).into()
        }
        Some(Kind::WerkzeugScrypt) => {
            let Some(w) = parse_werkzeug(stored) else { return false };
            let Some(params) = scrypt_params(&w) else { return false };
            let mut out = vec![0u8; w.digest.len()];
            scrypt::scrypt(password, w.salt.as_bytes(), &params, &mut out).is_ok() && bool::from(out.ct_eq(&w.digest))
        }
        // bcrypt reads at most 72 bytes; a longer password is not what was hashed.
        Some(Kind::Bcrypt) => password.len() <= 72 && bcrypt::verify(password, stored).unwrap_or(false),
        Some(Kind::Argon2) | None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> serde_json::Value {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/legacy/hashes.json"
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn verifies_every_fixture_made_by_werkzeug_and_bcrypt() {
        let f = fixtures();
        for name in [
            "werkzeug_pbkdf2_low",
            "werkzeug_scrypt_low",
            "werkzeug_scrypt",
            "bcrypt_2b",
            "bcrypt_2y",
        ] {
            let (pw, hash) = (f[name]["password"].as_str().unwrap(), f[name]["hash"].as_str().unwrap());
            assert!(is_supported(hash), "{name}");
            assert!(verify(pw.as_bytes(), hash), "{name}");
            assert!(
                !verify(format!("{pw}x").as_bytes(), hash),
                "{name} with a wrong password"
            );
        }
    }

    #[test]
    fn refuses_malformed_and_unknown_hashes() {
        for bad in [
            "md5$abc$def",
            "pbkdf2:sha256$salt$00",
            "pbkdf2:sha1:1000$salt$00",
            "pbkdf2:sha256:99999999999$salt$00",
            "pbkdf2:sha256:1000$salt$0g",
            "scrypt:1000:8:1$salt$00",
            "scrypt:1073741824:8:1$salt$00",
            "",
        ] {
            assert!(!is_supported(bad), "{bad}");
            assert!(!verify(b"x", bad), "{bad}");
        }
    }
}
