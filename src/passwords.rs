//! Password hashing (Argon2id, m=19456 KiB, t=2, p=1: the OWASP baseline), the
//! bounded pool it runs on, and the password policy.
//!
//! Hashing costs tens of milliseconds of CPU, so it never runs on the async
//! runtime: `hash_workers` threads of their own hash, at most `hash_queue` more
//! jobs wait; past that the caller gets `Busy` (503) at once instead of piling up
//! work the server cannot finish. The hashing threads run in the background
//! (`scheduling`), so that a login storm takes the CPU that identify leaves and
//! does not delay identify (docs/src/benchmarks.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{oneshot, Semaphore};

use crate::i18n::Lang;
use crate::scheduling::WorkerLoad;

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
    /// Contains the account's own mobile number.
    ContainsMobile,
    /// A common password, or one zxcvbn guesses within a million tries.
    TooCommon,
}

impl PasswordProblem {
    pub fn message(self, lang: Lang) -> String {
        match (self, lang) {
            (PasswordProblem::TooShort(n), Lang::En) => format!("password must be at least {n} characters"),
            (PasswordProblem::TooShort(n), Lang::Zh) => format!("密码至少需要 {n} 个字符"),
            (PasswordProblem::TooLong, Lang::En) => format!("password must be at most {MAX_PASSWORD_BYTES} bytes"),
            (PasswordProblem::TooLong, Lang::Zh) => format!("密码不能超过 {MAX_PASSWORD_BYTES} 字节"),
            (PasswordProblem::ContainsMobile, Lang::En) => "password must not contain your mobile number".into(),
            (PasswordProblem::ContainsMobile, Lang::Zh) => "密码不能包含手机号码".into(),
            (PasswordProblem::TooCommon, Lang::En) => "password is too common or too easy to guess".into(),
            (PasswordProblem::TooCommon, Lang::Zh) => "密码过于常见或容易被猜到".into(),
        }
    }
}

/// The part of a long password that the strength estimate looks at: zxcvbn's
/// cost grows with the length, and past this many characters length alone makes
/// a password strong unless its start is already a weak pattern.
const STRENGTH_PREFIX_CHARS: usize = 100;

/// Checks a new password (NIST SP 800-63B §5.1.1.2): length in Unicode characters,
/// at most `MAX_PASSWORD_BYTES`, not the account's own mobile number, not common
/// or easily guessed (zxcvbn score below 2). No composition rules, no truncation.
/// `mobile` is the account's E.164 number.
pub fn check_policy(password: &str, min_chars: usize, mobile: Option<&str>) -> Result<(), PasswordProblem> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordProblem::TooLong);
    }
    let chars = password.chars().count();
    if chars < min_chars {
        return Err(PasswordProblem::TooShort(min_chars));
    }
    let mut user_inputs = Vec::new();
    if let Some(mobile) = mobile {
        let digits = mobile.trim_start_matches('+');
        let national = national_number(mobile);
        for needle in [Some(digits), national.as_deref()].into_iter().flatten() {
            if needle.len() >= 6 && password.contains(needle) {
                return Err(PasswordProblem::ContainsMobile);
            }
        }
        user_inputs.push(digits.to_owned());
        user_inputs.extend(national);
    }
    let inputs: Vec<&str> = user_inputs.iter().map(String::as_str).collect();
    let end = password
        .char_indices()
        .nth(STRENGTH_PREFIX_CHARS)
        .map_or(password.len(), |(i, _)| i);
    if (zxcvbn::zxcvbn(&password[..end], &inputs).score() as u8) < 2 {
        return Err(PasswordProblem::TooCommon);
    }
    Ok(())
}

/// The national significant number of an E.164 number (`13800000001` of `+8613800000001`).
fn national_number(e164: &str) -> Option<String> {
    phonenumber::parse(None, e164)
        .ok()
        .map(|n| n.national().value().to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing queue full")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes and verifies passwords on a bounded pool of threads of its own.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

/// How long a hashing thread that stands aside waits before it looks at the
/// workers' load again.
const STAND_ASIDE: Duration = Duration::from_millis(10);

/// How long an idle hashing thread waits for a job before it looks at the load
/// again (a busy runtime then costs it at most one more job).
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// A job for a hashing thread, given that thread's Argon2 memory.
type Job = Box<dyn FnOnce(&mut HashMemory) + Send>;

struct Inner {
    /// Permits to be in the pool at all (running or waiting).
    admission: Arc<Semaphore>,
    /// To the hashing threads; they stop when the last `Hasher` is gone.
    jobs_tx: crossbeam_channel::Sender<Job>,
    /// A real hash of a random password: verifying an unknown mobile against it
    /// costs the same as verifying a wrong password of a real user.
    dummy_hash: String,
    jobs: AtomicU64,
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, current_params())
}

fn current_params() -> Params {
    Params::new(M_COST_KIB, T_COST, P_COST, None).expect("constant Argon2 parameters are valid")
}

/// The working memory of one Argon2 computation at the current parameters
/// (19 MiB), kept between hashes. A fresh one per hash means mapping and zeroing
/// 19 MiB each time, a tenth of login throughput (docs/src/benchmarks.md); Argon2 writes
/// every block before it reads it, so reused memory needs no clearing.
#[derive(Default)]
pub struct HashMemory(Vec<Block>);

impl HashMemory {
    /// Blocks for `params` when they are the current parameters; `None` for any
    /// other (a legacy hash, verified once with memory of its own, then rehashed).
    fn for_params(&mut self, params: &Params) -> Option<&mut [Block]> {
        let current = current_params();
        if (params.m_cost(), params.t_cost(), params.p_cost()) != (current.m_cost(), current.t_cost(), current.p_cost())
        {
            return None;
        }
        let blocks = M_COST_KIB as usize;
        if self.0.len() != blocks {
            self.0 = vec![Block::default(); blocks];
        }
        Some(&mut self.0)
    }
}

/// Hashes with the current parameters and a fresh 128-bit salt (blocking).
pub fn hash_blocking(password: &[u8]) -> Result<String, HashError> {
    hash_with(&mut HashMemory::default(), password)
}

/// `hash_blocking` in reused memory.
pub fn hash_with(memory: &mut HashMemory, password: &[u8]) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| failed(&e))?;
    let salt_b64 = SaltString::encode_b64(&salt).map_err(|e| failed(&e))?;
    let a = argon2();
    let blocks = memory.for_params(a.params()).expect("the current parameters");
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    a.hash_password_into_with_memory(password, &salt, &mut out, blocks)
        .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(a.params()).map_err(|e| failed(&e))?,
        salt: Some(salt_b64.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// Verifies against a stored hash (blocking): Argon2 of any parameters, or one of
/// the legacy formats of `legacy_hashes.rs`. Comparisons are constant-time. An
/// unparsable stored hash verifies nothing.
pub fn verify_blocking(password: &[u8], stored: &str) -> bool {
    verify_with(&mut HashMemory::default(), password, stored)
}

/// `verify_blocking` in reused memory.
pub fn verify_with(memory: &mut HashMemory, password: &[u8], stored: &str) -> bool {
    if !stored.starts_with("$argon2") {
        return crate::legacy_hashes::verify(password, stored);
    }
    verify_argon2(memory, password, stored).unwrap_or(false)
}

/// What `PasswordVerifier::verify_password` does, with the memory supplied: the
/// algorithm, version, parameters and salt come from the stored PHC string, the
/// output length from its hash; `None` when any of them does not parse.
fn verify_argon2(memory: &mut HashMemory, password: &[u8], stored: &str) -> Option<bool> {
    let parsed = PasswordHash::new(stored).ok()?;
    let expected = parsed.hash?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).ok()?;
    let mut salt_buf = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
    let a = Argon2::new(algorithm, version, params.clone());
    let mut out_buf = [0u8; Output::MAX_LENGTH];
    let out = out_buf.get_mut(..expected.len())?;
    let computed = match memory.for_params(&params) {
        Some(blocks) => a.hash_password_into_with_memory(password, salt, out, blocks),
        None => a.hash_password_into(password, salt, out),
    };
    computed.ok()?;
    Some(out.ct_eq(expected.as_bytes()).into())
}

/// True unless `stored` is Argon2id with the current parameters: after a
/// successful login such a hash is replaced.
pub fn needs_rehash(stored: &str) -> bool {
    let current = format!("$argon2id$v=19$m={M_COST_KIB},t={T_COST},p={P_COST}$");
    !stored.starts_with(&current)
}

impl Hasher {
    /// Starts `workers` hashing threads and computes the dummy hash (one hash, at
    /// startup).
    pub fn new(workers: usize, queue: usize) -> Result<Hasher, HashError> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| HashError::Failed(e.to_string()))?;
        let dummy_hash = hash_blocking(&random)?;
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        for i in 0..workers {
            let jobs_rx = jobs_rx.clone();
            // Every thread but the first stands aside while the request threads
            // are busy (`scheduling`); it looks before each job. Taken here: the
            // new thread is outside the runtime.
            let mut load = if i == 0 { None } else { WorkerLoad::of_current_runtime() };
            std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || {
                    crate::scheduling::run_in_background();
                    let mut memory = HashMemory::default();
                    loop {
                        if load.as_mut().is_some_and(WorkerLoad::busy) {
                            std::thread::sleep(STAND_ASIDE);
                            continue;
                        }
                        let job = match jobs_rx.recv_timeout(LOOK_AGAIN) {
                            Ok(job) => job,
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                        };
                        // A panic fails that one job (its caller sees the reply
                        // dropped), never the thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory)));
                    }
                })
                .map_err(|e| HashError::Failed(e.to_string()))?;
        }
        Ok(Hasher {
            inner: Arc::new(Inner {
                admission: Arc::new(Semaphore::new(workers + queue)),
                jobs_tx,
                dummy_hash,
                jobs: AtomicU64::new(0),
            }),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admitted = self
            .inner
            .admission
            .clone()
            .try_acquire_owned()
            .map(Admitted::new)
            .map_err(|_| HashError::Busy)?;
        self.inner.jobs.fetch_add(1, Ordering::Relaxed);
        let (done_tx, done_rx) = oneshot::channel();
        // The permit moves into the job: if the request is dropped (the client went
        // away), the hash still runs to the end and keeps its place in the bound.
        // The permit is given back before the reply is sent, so a caller that
        // awaits one job and then starts the next always finds the worker free.
        let job: Job = Box::new(move |memory| {
            let started = std::time::Instant::now();
            let result = job(memory);
            crate::observe::password_hash(started.elapsed());
            drop(admitted);
            let _ = done_tx.send(result);
        });
        self.inner
            .jobs_tx
            .send(job)
            .map_err(|_| HashError::Failed("hashing threads gone".into()))?;
        done_rx
            .await
            .map_err(|_| HashError::Failed("a hashing thread panicked".into()))
    }

    /// Hashes and verifications started so far (lets tests see that an unknown
    /// mobile costs a verification too).
    pub fn jobs(&self) -> u64 {
        self.inner.jobs.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |memory| hash_with(memory, password.as_bytes())).await?
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is
    /// no stored hash (unknown mobile), so both cases take the same time.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, HashError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let ok = self
            .run(move |memory| verify_with(memory, password.as_bytes(), &hash))
            .await?;
        Ok(known && ok)
    }
}

/// A place among the running and waiting hashes, counted in the queue gauge for
/// as long as it is held, however the job ends.
struct Admitted(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl Admitted {
    fn new(permit: tokio::sync::OwnedSemaphorePermit) -> Admitted {
        crate::observe::password_hash_queue(1);
        Admitted(permit)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        crate::observe::password_hash_queue(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn policy_counts_characters_and_caps_bytes() {
        assert_eq!(check_policy("short", 8, None), Err(PasswordProblem::TooShort(8)));
        assert_eq!(check_policy("长城外古道边芳草碧连天", 8, None), Ok(()));
        let long = "every good boy deserves fudge, said the walrus to the carpenter ".repeat(16);
        let long = &long[..MAX_PASSWORD_BYTES];
        assert_eq!(check_policy(long, 8, None), Ok(()));
        let longer = format!("{long}x");
        assert_eq!(check_policy(&longer, 8, None), Err(PasswordProblem::TooLong));
        assert_eq!(check_policy(&"q7".repeat(40), 8, None), Err(PasswordProblem::TooCommon));
    }

    #[test]
    fn policy_refuses_common_passwords_and_the_own_mobile() {
        for common in [
            "password",
            "password123",
            "12345678",
            "qwertyuiop",
            "iloveyou1",
            "11111111",
        ] {
            assert_eq!(
                check_policy(common, 8, None),
                Err(PasswordProblem::TooCommon),
                "{common}"
            );
        }
        let mobile = Some("+8613800000001");
        assert_eq!(
            check_policy("my13800000001pw", 8, mobile),
            Err(PasswordProblem::ContainsMobile)
        );
        assert_eq!(
            check_policy("x8613800000001", 8, mobile),
            Err(PasswordProblem::ContainsMobile)
        );
        assert_eq!(check_policy("correct horse battery staple", 8, mobile), Ok(()));
    }

    #[test]
    fn hashes_are_argon2id_with_the_set_parameters_and_verify() {
        let h = hash_blocking(b"correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_blocking(b"correct horse", &h));
        assert!(!verify_blocking(b"correct hors", &h));
        assert!(!verify_blocking(b"x", "not a hash"));
        assert!(!needs_rehash(&h));
        // Argon2 with older parameters still verifies, and is due for a rehash.
        let old = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(4096, 3, 1, None).unwrap(),
        )
        .hash_password(b"correct horse", &SaltString::encode_b64(&[1u8; 16]).unwrap())
        .unwrap()
        .to_string();
        assert!(verify_blocking(b"correct horse", &old));
        assert!(needs_rehash(&old));
    }

    /// Hashing and verifying in reused memory agree with the argon2 crate's own
    /// `PasswordHasher` and `PasswordVerifier`, both ways, for every variant.
    #[test]
    fn reused_memory_agrees_with_the_crate() {
        let mut memory = HashMemory::default();
        for i in 0..3 {
            let password = format!("password {i}");
            let ours = hash_with(&mut memory, password.as_bytes()).unwrap();
            let parsed = PasswordHash::new(&ours).unwrap();
            assert!(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok());
            assert!(Argon2::default().verify_password(b"password x", &parsed).is_err());
        }
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let variants = [
            (Algorithm::Argon2id, Version::V0x13, current_params()),
            (Algorithm::Argon2id, Version::V0x10, current_params()),
            (
                Algorithm::Argon2d,
                Version::V0x13,
                Params::new(8192, 2, 2, Some(48)).unwrap(),
            ),
            (
                Algorithm::Argon2i,
                Version::V0x13,
                Params::new(4096, 3, 1, Some(16)).unwrap(),
            ),
        ];
        for (algorithm, version, params) in variants {
            let theirs = Argon2::new(algorithm, version, params)
                .hash_password(b"correct horse", &salt)
                .unwrap()
                .to_string();
            assert!(verify_with(&mut memory, b"correct horse", &theirs), "{theirs}");
            assert!(!verify_with(&mut memory, b"correct horsE", &theirs), "{theirs}");
        }
        // A stored hash cut short or with a changed parameter verifies nothing.
        let ours = hash_with(&mut memory, b"correct horse").unwrap();
        assert!(!verify_with(&mut memory, b"correct horse", &ours[..ours.len() - 4]));
        assert!(!verify_with(&mut memory, b"correct horse", &ours.replace("t=2", "t=3")));
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
