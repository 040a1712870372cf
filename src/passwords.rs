//! Password hashing (Argon2id, m=19456 KiB, t=2, p=1: the OWASP baseline), the
//! bounded pool it runs on, and the password policy.
//!
//! Hashing costs tens of milliseconds of CPU, so it never runs on the async
//! runtime: at most `hash_workers` hashes run at once on blocking threads and at
//! most `hash_queue` more wait; past that the caller gets `Busy` (503) at once
//! instead of piling up work the server cannot finish.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::i18n::Lang;

pub const M_COST_KIB: u32 = 19_456;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

/// Longest password accepted, in bytes; refused before any hashing so that a
/// huge body cannot buy a huge hash.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why the policy refused a password; its text goes into `msg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort(usize),
    TooLong,
}

impl PasswordProblem {
    pub fn message(self, lang: Lang) -> String {
        match (self, lang) {
            (PasswordProblem::TooShort(n), Lang::En) => format!("password must be at least {n} characters"),
            (PasswordProblem::TooShort(n), Lang::Zh) => format!("密码至少需要 {n} 个字符"),
            (PasswordProblem::TooLong, Lang::En) => format!("password must be at most {MAX_PASSWORD_BYTES} bytes"),
            (PasswordProblem::TooLong, Lang::Zh) => format!("密码不能超过 {MAX_PASSWORD_BYTES} 字节"),
        }
    }
}

/// Checks a new password. Length counts Unicode characters (NIST SP 800-63B);
/// there are no composition rules and nothing is truncated.
pub fn check_policy(password: &str, min_chars: usize) -> Result<(), PasswordProblem> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordProblem::TooLong);
    }
    if password.chars().count() < min_chars {
        return Err(PasswordProblem::TooShort(min_chars));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing queue full")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes and verifies passwords on a bounded pool of blocking threads.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    /// Permits to be in the pool at all (running or waiting).
    admission: Arc<Semaphore>,
    /// Permits to run.
    workers: Arc<Semaphore>,
    /// A real hash of a random password: verifying an unknown mobile against it
    /// costs the same as verifying a wrong password of a real user.
    dummy_hash: String,
    jobs: AtomicU64,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes with the current parameters and a fresh 128-bit salt (blocking).
pub fn hash_blocking(password: &[u8]) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| HashError::Failed(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Failed(e.to_string()))?;
    argon2()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

/// Verifies against a stored PHC string (blocking); the comparison inside is
/// constant-time. An unparsable stored hash verifies nothing.
pub fn verify_blocking(password: &[u8], stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

impl Hasher {
    /// Builds the pool and computes the dummy hash (one hash, at startup).
    pub fn new(workers: usize, queue: usize) -> Result<Hasher, HashError> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| HashError::Failed(e.to_string()))?;
        let dummy_hash = hash_blocking(&random)?;
        Ok(Hasher {
            inner: Arc::new(Inner {
                admission: Arc::new(Semaphore::new(workers + queue)),
                workers: Arc::new(Semaphore::new(workers)),
                dummy_hash,
                jobs: AtomicU64::new(0),
            }),
        })
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let admitted = self
            .inner
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let running = self
            .inner
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Failed("hasher closed".into()))?;
        self.inner.jobs.fetch_add(1, Ordering::Relaxed);
        // The permits move into the job: if the request is dropped (the client went
        // away), the hash still runs to the end and keeps its place in the bound.
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            job()
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Hashes and verifications started so far (lets tests see that an unknown
    /// mobile costs a verification too).
    pub fn jobs(&self) -> u64 {
        self.inner.jobs.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || hash_blocking(password.as_bytes())).await?
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is
    /// no stored hash (unknown mobile), so both cases take the same time.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, HashError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let ok = self.run(move || verify_blocking(password.as_bytes(), &hash)).await?;
        Ok(known && ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_counts_characters_and_caps_bytes() {
        assert_eq!(check_policy("short", 8), Err(PasswordProblem::TooShort(8)));
        assert_eq!(check_policy("密码密码密码密码", 8), Ok(()));
        assert_eq!(check_policy(&"a".repeat(64), 8), Ok(()));
        assert_eq!(check_policy(&"a".repeat(MAX_PASSWORD_BYTES), 8), Ok(()));
        assert_eq!(
            check_policy(&"a".repeat(MAX_PASSWORD_BYTES + 1), 8),
            Err(PasswordProblem::TooLong)
        );
    }

    #[test]
    fn hashes_are_argon2id_with_the_set_parameters_and_verify() {
        let h = hash_blocking(b"correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_blocking(b"correct horse", &h));
        assert!(!verify_blocking(b"correct hors", &h));
        assert!(!verify_blocking(b"x", "not a hash"));
    }

    #[tokio::test]
    async fn unknown_user_never_verifies_and_a_full_queue_is_busy() {
        let hasher = Hasher::new(1, 0).unwrap();
        assert!(!hasher.verify("anything".into(), None).await.unwrap());
        let h = hasher.hash("pw-pw-pw-pw".into()).await.unwrap();
        assert!(hasher.verify("pw-pw-pw-pw".into(), Some(h.clone())).await.unwrap());
        // One worker, no queue: a second concurrent job is refused at once.
        let (a, b) = tokio::join!(hasher.hash("one-one-one".into()), hasher.hash("two-two-two".into()));
        assert!(matches!(
            (a, b),
            (Ok(_), Err(HashError::Busy)) | (Err(HashError::Busy), Ok(_))
        ));
    }
}
