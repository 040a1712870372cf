//! Access tokens (SPEC §4): claims, the key ring, signing and verification.
//!
//! Verification is written as a list of refusals, in this order: the token must
//! be a compact JWS of three segments; the header is parsed and its `alg` checked
//! against the allow-list before any cryptography; keys are only ever taken from
//! our own ring (never from `jwk`, `jku`, `x5u`, `x5c`, whose presence alone
//! refuses the token); then the HMAC (jsonwebtoken's, compared in constant time);
//! then each claim, with its type. Anything unexpected is `invalid_token`; only a
//! past `exp` is `token_expired`.
//!
//! The segments are parsed here rather than by `jsonwebtoken::decode`, which
//! parses the header twice and the claims twice into general structures: identify
//! runs on every request of the platform, and each segment is parsed once here.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, SecretSource, MIN_SECRET_LEN};
use crate::ids::SessionId;
use crate::keyed;

/// The file a generated secret is kept in, inside the data directory.
pub const GENERATED_SECRET_FILE: &str = "secret.key";

/// The one algorithm accepted in a token header, exactly as written there. The
/// service signs with nothing else, and accepting more only widens what an
/// attacker may try.
const ALLOWED_ALG: (&str, Algorithm) = ("HS256", Algorithm::HS256);

/// The JOSE header fields verification looks at. A field named twice fails to
/// parse; the key-carrying fields are read only to refuse the token.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(default)]
    jku: Option<IgnoredAny>,
    #[serde(default)]
    jwk: Option<IgnoredAny>,
    #[serde(default)]
    x5u: Option<IgnoredAny>,
    #[serde(default)]
    x5c: Option<IgnoredAny>,
}

impl JoseHeader<'_> {
    fn names_a_key_source(&self) -> bool {
        self.jku.is_some() || self.jwk.is_some() || self.x5u.is_some() || self.x5c.is_some()
    }
}

/// Room for a decoded segment. A token is at most `credentials::MAX_HEADER_LEN`
/// characters, so no segment of one that can arrive decodes to more.
const SEGMENT_MAX: usize = crate::credentials::MAX_HEADER_LEN * 3 / 4;

/// A base64url segment (no padding, canonical) decoded into `buf`, then parsed.
fn parse_segment<'b, T: Deserialize<'b>>(segment: &str, buf: &'b mut [u8; SEGMENT_MAX]) -> Result<T, TokenError> {
    let n = URL_SAFE_NO_PAD
        .decode_slice(segment, buf)
        .map_err(|_| TokenError::Invalid)?;
    serde_json::from_slice(&buf[..n]).map_err(|_| TokenError::Invalid)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimsData {
    pub id: i64,
    pub login_time: i64,
}

/// The claims of an access token. Deserializing refuses a missing or ill-typed
/// required claim (`exp` as a string, `data.id` as a string, …). Verification
/// borrows the strings from the decoded token; signing owns them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims<'a> {
    #[serde(borrow)]
    pub iss: Cow<'a, str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub sub: Option<Cow<'a, str>>,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(borrow)]
    pub sid: Cow<'a, str>,
    pub data: ClaimsData,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
}

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user_id: i64,
    pub session_id: SessionId,
    pub login_time: i64,
    pub exp: i64,
    pub kid: String,
}

#[derive(Clone)]
struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The signing keys. The first is current (it signs); every key verifies.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<Key>,
    /// Derives refresh-token successors (see `refresh.rs`); from the current key.
    refresh_key: [u8; 32],
    /// Keys the stored refresh-token digests, one per ring key, current first.
    refresh_digest_keys: Vec<[u8; 32]>,
    /// Keys the stored stream-key digests (`streams.rs`), one per ring key, current first.
    stream_digest_keys: Vec<[u8; 32]>,
    /// Sign play tickets (`tickets.rs`), one per ring key, current first.
    ticket_keys: Vec<[u8; 32]>,
    issuer: String,
    leeway: i64,
    access_ttl: i64,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("KeyRing")
            .field("kids", &kids)
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// A key id that names the key without revealing it: a truncated SHA-256 of it.
fn kid_of(secret: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"passport kid\0");
    h.update(secret);
    URL_SAFE_NO_PAD.encode(&h.finalize()[..6])
}

/// A key file's bytes, less one trailing newline (SPEC §9).
fn read_key_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read secret key file {}: {e}", path.display()))?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
    }
    Ok(bytes)
}

/// Reads the generated secret, creating it first when there is none: 32 random
/// bytes written as hex (so the file also works as `PASSPORT_SECRET_KEY_FILE`),
/// mode 0600, linked into place so that two processes starting at once agree.
fn load_or_generate(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(GENERATED_SECRET_FILE);
    if path.exists() {
        return read_key_file(&path);
    }
    std::fs::create_dir_all(data_dir)?;
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness for the secret: {e}"))?;
    let text: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = data_dir.join(format!("{GENERATED_SECRET_FILE}.{}.tmp", std::process::id()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "no signing secret configured: generated one (give every process the same secret)");
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    read_key_file(&path)
}

/// Longest kid accepted from a key file name.
const MAX_KID_LEN: usize = 64;

/// The `<kid>.key` files of a key directory, greatest kid first.
fn read_key_dir(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read PASSPORT_SECRET_KEYS_DIR {}: {e}", dir.display()))?;
    let mut keys = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(kid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".key"))
        else {
            continue;
        };
        let kid_ok = !kid.is_empty()
            && kid.len() <= MAX_KID_LEN
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !kid_ok {
            anyhow::bail!(
                "key file {}: a kid is 1-{MAX_KID_LEN} of A-Z a-z 0-9 - _ .",
                path.display()
            );
        }
        let secret = read_key_file(&path)?;
        if secret.len() < MIN_SECRET_LEN {
            anyhow::bail!(
                "key file {}: a secret must be at least {MIN_SECRET_LEN} bytes",
                path.display()
            );
        }
        keys.push((kid.to_owned(), secret));
    }
    if keys.is_empty() {
        anyhow::bail!("PASSPORT_SECRET_KEYS_DIR {} holds no <kid>.key file", dir.display());
    }
    keys.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(keys)
}

impl KeyRing {
    /// The key ring the configuration names. With `PASSPORT_SECRET_KEYS_DIR`, every
    /// `<kid>.key` file in it is a key and the greatest kid signs (name them by date);
    /// a secret given as well (`PASSPORT_SECRET_KEY[_FILE]`) still verifies, so moving
    /// to a ring logs nobody out. Without it, the one secret (given or generated) signs.
    pub fn load(config: &Config) -> anyhow::Result<KeyRing> {
        let mut keys = match &config.secret_keys_dir {
            Some(dir) => read_key_dir(dir)?,
            None => Vec::new(),
        };
        let single = match &config.secret() {
            SecretSource::Inline(bytes) => Some(bytes.clone()),
            SecretSource::File(path) => Some(read_key_file(path)?),
            SecretSource::Generated if keys.is_empty() => Some(load_or_generate(&config.data_dir)?),
            SecretSource::Generated => None,
        };
        if let Some(secret) = single {
            if secret.len() < MIN_SECRET_LEN {
                anyhow::bail!("the signing secret must be at least {MIN_SECRET_LEN} bytes");
            }
            keys.push((kid_of(&secret), secret));
        }
        Ok(KeyRing::with_kids(
            keys,
            config.issuer.clone(),
            config.leeway,
            config.access_ttl,
        ))
    }

    /// A ring of raw secrets, newest first, each named by a kid derived from it.
    pub fn new(secrets: &[Vec<u8>], issuer: String, leeway: u64, access_ttl: u64) -> KeyRing {
        let keys = secrets.iter().map(|s| (kid_of(s), s.clone())).collect();
        KeyRing::with_kids(keys, issuer, leeway, access_ttl)
    }

    /// A ring of `(kid, secret)`, the first signing. Panics on an empty ring.
    pub fn with_kids(named: Vec<(String, Vec<u8>)>, issuer: String, leeway: u64, access_ttl: u64) -> KeyRing {
        assert!(!named.is_empty(), "a key ring needs a key");
        let derive = |secret: &[u8], label: &[u8]| keyed::hmac(secret, &[label]);
        let refresh_key = derive(&named[0].1, b"passport refresh successor v1");
        let per_key = |label: &[u8]| named.iter().map(|(_, s)| derive(s, label)).collect::<Vec<_>>();
        let refresh_digest_keys = per_key(b"passport refresh digest v1");
        let stream_digest_keys = per_key(b"passport stream key digest v1");
        let ticket_keys = per_key(b"passport play ticket v1");
        let keys = named
            .iter()
            .map(|(kid, s)| Key {
                kid: kid.clone(),
                encoding: EncodingKey::from_secret(s),
                decoding: DecodingKey::from_secret(s),
            })
            .collect();
        KeyRing {
            refresh_key,
            refresh_digest_keys,
            stream_digest_keys,
            ticket_keys,
            keys,
            issuer,
            leeway: leeway as i64,
            access_ttl: access_ttl as i64,
        }
    }

    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    pub fn refresh_key(&self) -> [u8; 32] {
        self.refresh_key
    }

    pub fn refresh_digest_keys(&self) -> Vec<[u8; 32]> {
        self.refresh_digest_keys.clone()
    }

    pub fn stream_digest_keys(&self) -> &[[u8; 32]] {
        &self.stream_digest_keys
    }

    pub fn ticket_keys(&self) -> &[[u8; 32]] {
        &self.ticket_keys
    }

    pub fn access_ttl(&self) -> i64 {
        self.access_ttl
    }

    /// The claims of a new access token for a session.
    pub fn claims_for(&self, user_id: i64, session_id: &SessionId, login_time: i64, now: i64) -> Claims<'static> {
        Claims {
            iss: self.issuer.clone().into(),
            sub: Some(user_id.to_string().into()),
            iat: now,
            exp: now + self.access_ttl,
            nbf: None,
            sid: session_id.encode().into(),
            data: ClaimsData {
                id: user_id,
                login_time,
            },
        }
    }

    /// Signs claims with the current key.
    pub fn sign(&self, claims: &Claims<'_>) -> anyhow::Result<String> {
        let key = &self.keys[0];
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("JWT".into());
        header.kid = Some(key.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }

    /// Verifies a token at time `now` (unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Verified, TokenError> {
        use TokenError::Invalid;
        let mut segments = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(Invalid);
        };
        // One buffer for both segments: the header is done with once the key is
        // chosen, and the claims are decoded only after that.
        let mut buf = [0u8; SEGMENT_MAX];
        let header: JoseHeader = parse_segment(header_b64, &mut buf)?;
        if header.alg != ALLOWED_ALG.0 || header.names_a_key_source() {
            return Err(Invalid);
        }
        // Explicit typing (RFC 8725 §3.11): only our own kind of token.
        if header.typ.as_deref() != Some("JWT") || header.crit.is_some() {
            return Err(Invalid);
        }
        let key = match &header.kid {
            Some(kid) => self.keys.iter().find(|k| k.kid == *kid).ok_or(Invalid)?,
            None => &self.keys[0],
        };
        let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
        let genuine = jsonwebtoken::crypto::verify(signature_b64, signed.as_bytes(), &key.decoding, ALLOWED_ALG.1)
            .map_err(|_| Invalid)?;
        if !genuine {
            return Err(Invalid);
        }
        let c: Claims = parse_segment(claims_b64, &mut buf)?;
        if c.iss != self.issuer {
            return Err(Invalid);
        }
        if c.iat > now + self.leeway || c.nbf.is_some_and(|nbf| nbf > now + self.leeway) {
            return Err(Invalid);
        }
        if c.sub.as_ref().is_some_and(|sub| *sub != c.data.id.to_string()) {
            return Err(Invalid);
        }
        let session_id = SessionId::parse(&c.sid).ok_or(Invalid)?;
        if c.exp + self.leeway <= now {
            return Err(TokenError::Expired);
        }
        Ok(Verified {
            user_id: c.data.id,
            session_id,
            login_time: c.data.login_time,
            exp: c.exp,
            kid: key.kid.clone(),
        })
    }
}

/// Decodes a compact JWS segment as JSON, without verifying anything (for display).
pub fn peek_segment(token: &str, index: usize) -> Option<serde_json::Value> {
    let part = token.split('.').nth(index)?;
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(
            &[b"0123456789abcdef0123456789abcdef".to_vec()],
            "passport".into(),
            30,
            86_400,
        )
    }

    #[test]
    fn round_trip() {
        let r = ring();
        let sid = SessionId::random();
        let claims = r.claims_for(7, &sid, 1_000, 1_000);
        let token = r.sign(&claims).unwrap();
        let v = r.verify(&token, 1_001).unwrap();
        assert_eq!((v.user_id, v.session_id, v.login_time), (7, sid, 1_000));
        assert_eq!(v.kid, r.current_kid());
    }

    #[test]
    fn expiry_honours_the_leeway() {
        let r = ring();
        let claims = r.claims_for(7, &SessionId::random(), 1_000, 1_000);
        let token = r.sign(&claims).unwrap();
        let exp = claims.exp;
        assert!(r.verify(&token, exp + 29).is_ok());
        assert_eq!(r.verify(&token, exp + 30), Err(TokenError::Expired));
    }

    /// A token whose header is `header` (raw JSON) and whose claims are those of a
    /// valid token, signed with the ring's key.
    fn with_header(r: &KeyRing, header: &str) -> String {
        let good = r.sign(&r.claims_for(7, &SessionId::random(), 1_000, 1_000)).unwrap();
        let claims = good.split('.').nth(1).unwrap();
        let signed = format!("{}.{claims}", URL_SAFE_NO_PAD.encode(header));
        let sig = jsonwebtoken::crypto::sign(
            signed.as_bytes(),
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{signed}.{sig}")
    }

    #[test]
    fn only_a_plain_compact_hs256_jws_is_accepted() {
        let r = ring();
        let kid = r.current_kid().to_owned();
        let ok = with_header(&r, &format!(r#"{{"typ":"JWT","alg":"HS256","kid":"{kid}"}}"#));
        assert!(r.verify(&ok, 1_001).is_ok());
        let refused = [
            format!(r#"{{"typ":"JWT","alg":"hs256","kid":"{kid}"}}"#),
            format!(r#"{{"typ":"JWT","alg":"HS256","alg":"HS256","kid":"{kid}"}}"#),
            format!(r#"{{"typ":"JWT","alg":"HS256","kid":"{kid}","crit":["exp"]}}"#),
            format!(r#"{{"typ":"at+jwt","alg":"HS256","kid":"{kid}"}}"#),
            format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#),
            format!(r#"{{"typ":"JWT","alg":"HS256","kid":"{kid}","x5c":[]}}"#),
            r#"{"typ":"JWT","alg":"HS256","kid":"nope"}"#.to_owned(),
            r#"["HS256"]"#.to_owned(),
        ];
        for header in refused {
            assert_eq!(
                r.verify(&with_header(&r, &header), 1_001),
                Err(TokenError::Invalid),
                "{header}"
            );
        }
        for bad in [
            format!("{ok}."),
            ok.rsplit_once('.').unwrap().0.to_owned(),
            format!("{ok}="),
        ] {
            assert_eq!(r.verify(&bad, 1_001), Err(TokenError::Invalid), "{bad}");
        }
    }
}
