//! Throttling (SPEC §9): failed logins per account, login attempts per client IP,
//! registrations per client IP. Counters live in the shared store (embedded or
//! Redis), so every process counts together; each limit is a fixed window counted
//! atomically by the store. (governor and its kin keep state in one process's
//! memory, which several processes behind a load balancer cannot share.)
//!
//! An account over its limit is refused before its password is looked at, so the
//! answer says nothing about whether the password was right.

use crate::app::AppState;
use crate::audit::{AuditEvent, Event, RequestMeta};
use crate::config::RateLimit;
use crate::error::ApiError;

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

async fn refuse(state: &AppState, meta: &RequestMeta, retry_after: i64, what: &'static str) -> ApiError {
    state
        .audit
        .record(AuditEvent::denied(Event::RateLimited, meta, what, "rate_limited"))
        .await;
    ApiError::RateLimited(retry_after)
}

/// Counts an attempt against a per-IP limit; refuses once over it.
async fn count_ip(
    state: &AppState,
    meta: &RequestMeta,
    key: String,
    limit: RateLimit,
    what: &'static str,
) -> Result<(), ApiError> {
    let Some(_) = &meta.ip else { return Ok(()) };
    let c = state.rates.hit(&key, limit.window, crate::clock::now()).await?;
    if c.count > limit.count {
        return Err(refuse(state, meta, c.reset_in, what).await);
    }
    Ok(())
}

/// Every login attempt, whatever its outcome, counts against its client IP.
pub async fn login_attempt(state: &AppState, meta: &RequestMeta) -> Result<(), ApiError> {
    let key = login_ip_key(meta.ip.as_deref().unwrap_or_default());
    count_ip(
        state,
        meta,
        key,
        state.config.rate_login_ip,
        "too many logins from this address",
    )
    .await
}

/// Every registration attempt counts against its client IP.
pub async fn register_attempt(state: &AppState, meta: &RequestMeta) -> Result<(), ApiError> {
    let key = register_ip_key(meta.ip.as_deref().unwrap_or_default());
    count_ip(
        state,
        meta,
        key,
        state.config.rate_register_ip,
        "too many registrations from this address",
    )
    .await
}

/// What `check_account` saw of an account that may try: whether it had failures
/// for a success to clear.
#[must_use]
pub struct Standing {
    had_failures: bool,
}

/// Refuses a login for an account (a normalized mobile, known or not) that has
/// used up its failures, before any password check.
pub async fn check_account(state: &AppState, mobile: &str, meta: &RequestMeta) -> Result<Standing, ApiError> {
    let now = crate::clock::now();
    let limit = state.config.rate_login_account;
    let (failures, streak) = (failures_key(mobile), streak_key(mobile));
    let counts = state.rates.peek_all(&[&failures, &streak], now).await?;
    let [window, streak] = counts[..] else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "rate store answered {} counts for 2",
            counts.len()
        )));
    };
    if window.count >= limit.count {
        return Err(refuse(state, meta, window.reset_in, "too many failed logins for this account").await);
    }
    if streak.count >= MAX_CONSECUTIVE_FAILURES.count {
        return Err(refuse(
            state,
            meta,
            streak.reset_in,
            "too many consecutive failed logins for this account",
        )
        .await);
    }
    Ok(Standing {
        had_failures: window.count > 0 || streak.count > 0,
    })
}

pub async fn login_failed(state: &AppState, mobile: &str) -> Result<(), ApiError> {
    let now = crate::clock::now();
    state
        .rates
        .hit(&failures_key(mobile), state.config.rate_login_account.window, now)
        .await?;
    state
        .rates
        .hit(&streak_key(mobile), MAX_CONSECUTIVE_FAILURES.window, now)
        .await?;
    Ok(())
}

/// A successful login ends the account's failure count and streak. With none
/// seen before the password check there is nothing to write (two writes saved on
/// nearly every login); a failure landing meanwhile is left counted, which errs on
/// the side of the limit.
pub async fn login_succeeded(state: &AppState, mobile: &str, seen: Standing) -> Result<(), ApiError> {
    if seen.had_failures {
        state.rates.reset(&failures_key(mobile)).await?;
        state.rates.reset(&streak_key(mobile)).await?;
    }
    Ok(())
}
