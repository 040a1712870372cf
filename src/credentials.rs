//! The `Authorization` header of SPEC §5 step 1: `JWT <token>` (the original
//! scheme) or `Bearer <token>`, scheme case-insensitive, exactly one token.

use crate::error::ApiError;

/// Longest header accepted; a real token is well under 1 KiB.
pub const MAX_HEADER_LEN: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Jwt,
    Bearer,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Jwt => "JWT",
            Scheme::Bearer => "Bearer",
        }
    }

    /// The scheme word of a header, when it is one of ours (used to answer a 401
    /// in the scheme the client spoke, whatever else is wrong with the header).
    pub fn of_header(value: &[u8]) -> Option<Scheme> {
        let word = value.split(|b| *b == b' ').next()?;
        if word.eq_ignore_ascii_case(b"jwt") {
            Some(Scheme::Jwt)
        } else if word.eq_ignore_ascii_case(b"bearer") {
            Some(Scheme::Bearer)
        } else {
            None
        }
    }
}

/// Splits a header value into scheme and token. `None` (no header) is
/// `missing_credentials`; anything but `<scheme> SP <token>` with one token of
/// token68 characters (RFC 7235 §2.1) is `malformed_credentials`.
pub fn parse(value: Option<&[u8]>) -> Result<(Scheme, &str), ApiError> {
    let value = value.ok_or(ApiError::MissingCredentials)?;
    if value.len() > MAX_HEADER_LEN {
        return Err(ApiError::MalformedCredentials);
    }
    let scheme = Scheme::of_header(value).ok_or(ApiError::MalformedCredentials)?;
    let rest = &value[scheme.as_str().len()..];
    // Exactly one space, then one token: "JWT  a" and "JWT a b" are refused.
    let token = rest.strip_prefix(b" ").ok_or(ApiError::MalformedCredentials)?;
    if token.is_empty() || !token.iter().all(|b| is_token68(*b)) {
        return Err(ApiError::MalformedCredentials);
    }
    // token68 bytes are ASCII, so this cannot fail.
    let token = std::str::from_utf8(token).map_err(|_| ApiError::MalformedCredentials)?;
    Ok((scheme, token))
}

fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_schemes_in_any_case() {
        assert_eq!(parse(Some(b"JWT a.b.c")).unwrap(), (Scheme::Jwt, "a.b.c"));
        assert_eq!(parse(Some(b"jwt a.b.c")).unwrap(), (Scheme::Jwt, "a.b.c"));
        assert_eq!(parse(Some(b"bEaReR a.b.c")).unwrap(), (Scheme::Bearer, "a.b.c"));
    }

    #[test]
    fn refuses_everything_else() {
        assert!(matches!(parse(None), Err(ApiError::MissingCredentials)));
        for bad in [
            &b"Basic abc"[..],
            b"JWT",
            b"JWT ",
            b"JWT  a.b.c",
            b"JWT a.b.c d",
            b"JWT a.b.c ",
            b"JWTa.b.c",
            b"Bearer a\tb",
            b"Bearer \xff",
        ] {
            assert!(
                matches!(parse(Some(bad)), Err(ApiError::MalformedCredentials)),
                "{bad:?}"
            );
        }
        let long = format!("JWT {}", "a".repeat(MAX_HEADER_LEN));
        assert!(matches!(
            parse(Some(long.as_bytes())),
            Err(ApiError::MalformedCredentials)
        ));
    }
}
