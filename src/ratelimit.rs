//! Throttling (SPEC §9): failed logins per account, login attempts per client IP,
//! registrations per client IP. Counters live in the shared store (embedded or
//! Redis), so every process counts together; each limit is a fixed window counted
//! atomically by the store. (governor and its kin keep state in one process's
//! memory, which several processes behind a load balancer cannot share.)
//!
//! An account over its limit is refused before its password is looked at, so the
//! answer says nothing about whether the password was right.

use std::sync::Arc;

use crate::audit::{Audit, AuditEvent, Event, RequestMeta};
use crate::config::{Config, RateLimit};
use crate::error::ApiError;
use crate::store::RateStore;

/// NIST SP 800-63B §5.2.2: at most 100 consecutive failed attempts on one account.
/// The streak ends with a successful login or a day without failures.
pub const MAX_CONSECUTIVE_FAILURES: RateLimit = RateLimit {
    count: 100,
    window: 86_400,
};

fn login_ip_key(ip: &str) -> String {
    format!("login-ip:{ip}")
}

fn register_ip_key(ip: &str) -> String {
    format!("register-ip:{ip}")
}

fn failures_key(mobile: &str) -> String {
    format!("login-fail:{mobile}")
}

fn streak_key(mobile: &str) -> String {
    format!("login-streak:{mobile}")
}

/// The configured limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Failed logins per normalized mobile (known or not).
    pub login_account: RateLimit,
    /// Login attempts (any outcome) per client IP.
    pub login_ip: RateLimit,
    /// Registrations per client IP.
    pub register_ip: RateLimit,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            login_account: config.rate_login_account,
            login_ip: config.rate_login_ip,
            register_ip: config.rate_register_ip,
        }
    }
}

/// What `check_account` saw of an account that may try: whether it had failures
/// for a success to clear.
#[must_use]
pub struct Standing {
    had_failures: bool,
}

/// Counts attempts in the shared store and refuses those over a limit (each
/// refusal audited); cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    pub rates: Arc<dyn RateStore>,
    pub audit: Audit,
    pub limits: Limits,
}

impl RateLimiter {
    /// `limit` names the limit for metrics, `what` explains it in the audit log.
    async fn refuse(&self, meta: &RequestMeta, retry_after: i64, limit: &'static str, what: &'static str) -> ApiError {
        crate::observe::rate_limited(limit);
        self.audit
            .record(AuditEvent::denied(Event::RateLimited, meta, what, "rate_limited"))
            .await;
        ApiError::RateLimited(retry_after)
    }

    /// Counts an attempt against a per-IP limit; refuses once over it.
    async fn count_ip(
        &self,
        meta: &RequestMeta,
        key: fn(&str) -> String,
        limit: RateLimit,
        (name, what): (&'static str, &'static str),
    ) -> Result<(), ApiError> {
        let Some(ip) = &meta.ip else { return Ok(()) };
        let c = self.rates.hit(&key(ip), limit.window, crate::clock::now()).await?;
        if c.count > limit.count {
            return Err(self.refuse(meta, c.reset_in, name, what).await);
        }
        Ok(())
    }

    /// Every login attempt, whatever its outcome, counts against its client IP.
    pub async fn login_attempt(&self, meta: &RequestMeta) -> Result<(), ApiError> {
        let what = ("login_ip", "too many logins from this address");
        self.count_ip(meta, login_ip_key, self.limits.login_ip, what).await
    }

    /// Every registration attempt counts against its client IP.
    pub async fn register_attempt(&self, meta: &RequestMeta) -> Result<(), ApiError> {
        let what = ("register_ip", "too many registrations from this address");
        self.count_ip(meta, register_ip_key, self.limits.register_ip, what)
            .await
    }

    /// Refuses a login for an account (a normalized mobile, known or not) that has
    /// used up its failures, before any password check.
    pub async fn check_account(&self, mobile: &str, meta: &RequestMeta) -> Result<Standing, ApiError> {
        let now = crate::clock::now();
        let limit = self.limits.login_account;
        let (failures, streak) = (failures_key(mobile), streak_key(mobile));
        let counts = self.rates.peek_all(&[&failures, &streak], now).await?;
        let [window, streak] = counts[..] else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "rate store answered {} counts for 2",
                counts.len()
            )));
        };
        if window.count >= limit.count {
            return Err(self
                .refuse(
                    meta,
                    window.reset_in,
                    "login_account",
                    "too many failed logins for this account",
                )
                .await);
        }
        if streak.count >= MAX_CONSECUTIVE_FAILURES.count {
            let what = "too many consecutive failed logins for this account";
            return Err(self.refuse(meta, streak.reset_in, "login_streak", what).await);
        }
        Ok(Standing {
            had_failures: window.count > 0 || streak.count > 0,
        })
    }

    pub async fn login_failed(&self, mobile: &str) -> Result<(), ApiError> {
        let now = crate::clock::now();
        let window = self.limits.login_account.window;
        self.rates.hit(&failures_key(mobile), window, now).await?;
        self.rates
            .hit(&streak_key(mobile), MAX_CONSECUTIVE_FAILURES.window, now)
            .await?;
        Ok(())
    }

    /// A successful login ends the account's failure count and streak. With none
    /// seen before the password check there is nothing to write (two writes saved on
    /// nearly every login); a failure landing meanwhile is left counted, which errs on
    /// the side of the limit.
    pub async fn login_succeeded(&self, mobile: &str, seen: Standing) -> Result<(), ApiError> {
        if seen.had_failures {
            self.rates.reset(&failures_key(mobile)).await?;
            self.rates.reset(&streak_key(mobile)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_fixtures::{from_ip, Fixture, GENEROUS};

    /// A limiter over a fresh store with generous limits less what `tighten`
    /// changes, and a request from an address.
    async fn setup(tighten: impl FnOnce(&mut Limits)) -> (Fixture, RateLimiter, RequestMeta) {
        let f = Fixture::new().await;
        let mut limits = GENEROUS;
        tighten(&mut limits);
        let limiter = f.limiter(limits);
        (f, limiter, from_ip("192.0.2.1"))
    }

    #[tokio::test]
    async fn an_address_over_its_limit_is_refused_with_a_wait() {
        let (f, limiter, a) = setup(|l| l.login_ip = RateLimit { count: 2, window: 60 }).await;
        let b = from_ip("192.0.2.2");
        limiter.login_attempt(&a).await.unwrap();
        limiter.login_attempt(&a).await.unwrap();
        match limiter.login_attempt(&a).await {
            Err(ApiError::RateLimited(wait)) => assert!((1..=60).contains(&wait), "{wait}"),
            other => panic!("expected rate_limited, got {other:?}"),
        }
        // Other addresses, and registrations from the same one, count apart.
        limiter.login_attempt(&b).await.unwrap();
        limiter.register_attempt(&a).await.unwrap();
        // A request with no known address (a command) is never counted.
        for _ in 0..3 {
            limiter.login_attempt(&RequestMeta::command()).await.unwrap();
        }
        assert_eq!(f.count_events("rate_limited").await, 1);
    }

    #[tokio::test]
    async fn registrations_have_a_limit_of_their_own() {
        let (_f, limiter, a) = setup(|l| l.register_ip = RateLimit { count: 1, window: 3600 }).await;
        limiter.register_attempt(&a).await.unwrap();
        assert!(matches!(
            limiter.register_attempt(&a).await,
            Err(ApiError::RateLimited(_))
        ));
        limiter.login_attempt(&a).await.unwrap();
    }

    #[tokio::test]
    async fn an_account_out_of_failures_is_refused_and_a_success_clears_them() {
        let (_f, limiter, meta) = setup(|l| l.login_account = RateLimit { count: 2, window: 900 }).await;
        let (alice, bob) = ("+8613800000001", "+8613800000002");
        let clean = limiter.check_account(alice, &meta).await.unwrap();
        assert!(!clean.had_failures);
        limiter.login_failed(alice).await.unwrap();
        let seen = limiter.check_account(alice, &meta).await.unwrap();
        assert!(seen.had_failures);
        limiter.login_succeeded(alice, seen).await.unwrap();
        assert!(!limiter.check_account(alice, &meta).await.unwrap().had_failures);

        limiter.login_failed(alice).await.unwrap();
        limiter.login_failed(alice).await.unwrap();
        assert!(matches!(
            limiter.check_account(alice, &meta).await,
            Err(ApiError::RateLimited(wait)) if (1..=900).contains(&wait)
        ));
        // Another account is untouched.
        assert!(!limiter.check_account(bob, &meta).await.unwrap().had_failures);
    }

    #[tokio::test]
    async fn consecutive_failures_are_capped_beyond_the_window() {
        let (_f, limiter, meta) = setup(|_| {}).await;
        let mobile = "+8613800000003";
        for _ in 0..MAX_CONSECUTIVE_FAILURES.count {
            limiter.login_failed(mobile).await.unwrap();
        }
        match limiter.check_account(mobile, &meta).await {
            Err(ApiError::RateLimited(wait)) => {
                assert!(wait > GENEROUS.login_account.window, "{wait}")
            }
            other => panic!("expected rate_limited, got {:?}", other.map(|s| s.had_failures)),
        }
    }
}
