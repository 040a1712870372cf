//! Accounts: register, authenticate (login), profile, password change, and the
//! administrative changes the command line makes.

use serde::Serialize;

use crate::app::detached;
use crate::app::AppState;
use crate::audit::{AuditEvent, Event, RequestMeta};
use crate::error::{ApiError, BadInput};
use crate::identify::Identity;
use crate::passwords::{self, HashError};
use crate::profiles::ProfileJson;
use crate::refresh::RefreshToken;
use crate::store::{Session, UserRecord};
use crate::{ratelimit, sessions};

/// Longest `device` label kept with a session.
const MAX_DEVICE_CHARS: usize = 128;

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ApiError::Busy,
            HashError::Failed(why) => ApiError::Internal(anyhow::anyhow!(why)),
        }
    }
}

/// The E.164 form of a mobile number in the configured default region.
pub fn normalize_mobile(state: &AppState, raw: &str) -> Result<String, ApiError> {
    crate::phone::normalize(raw, state.config.default_region).ok_or(ApiError::InvalidParams(BadInput::Mobile))
}

/// The password policy for a new password of the account with this (E.164) mobile.
fn check_new_password(state: &AppState, password: &str, mobile: &str) -> Result<(), ApiError> {
    passwords::check_policy(password, state.config.password_min_length, Some(mobile)).map_err(ApiError::WeakPassword)
}

/// Creates an account with the `viewer` role; returns its id.
pub async fn register(state: &AppState, mobile: &str, password: String, meta: &RequestMeta) -> Result<i64, ApiError> {
    ratelimit::register_attempt(state, meta).await?;
    let mobile = normalize_mobile(state, mobile)?;
    check_new_password(state, &password, &mobile)?;
    let hash = state.hasher.hash(password).await?;
    let user_id = state
        .users
        .create(&mobile, &hash, &["viewer".to_owned()], crate::clock::now())
        .await?;
    state
        .audit
        .record(AuditEvent::ok(Event::Register, meta, "registered").user(user_id))
        .await;
    Ok(user_id)
}

#[derive(Debug, Serialize)]
pub struct LoginOk {
    pub token: String,
    pub user_id: i64,
    pub session_id: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub refresh_expires_in: i64,
}

/// Checks a password and opens a session. An unknown mobile and a wrong password
/// get the same answer after the same work (a verify against a dummy hash).
pub async fn login(
    state: &AppState,
    mobile: &str,
    password: String,
    device: Option<String>,
    meta: &RequestMeta,
) -> Result<LoginOk, ApiError> {
    ratelimit::login_attempt(state, meta).await?;
    let mobile = normalize_mobile(state, mobile)?;
    if let Some(d) = &device {
        if d.chars().count() > MAX_DEVICE_CHARS || d.chars().any(char::is_control) {
            return Err(ApiError::InvalidParams(BadInput::Device));
        }
    }
    let standing = ratelimit::check_account(state, &mobile, meta).await?;
    let user = state.users.find_by_mobile(&mobile).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let user_id = user.as_ref().map(|u| u.user_id);
    // A legacy or outdated hash is replaced once the password has been proven.
    let rehash = stored
        .as_deref()
        .filter(|h| passwords::needs_rehash(h))
        .map(|_| password.clone());
    let verified = state.hasher.verify(password, stored).await?;
    let user = match user {
        Some(u) if verified => u,
        _ => {
            ratelimit::login_failed(state, &mobile).await?;
            let mut e = AuditEvent::denied(Event::LoginFailed, meta, "login failed", "invalid_credentials");
            e.user_id = user_id;
            state.audit.record(e).await;
            return Err(ApiError::InvalidCredentials);
        }
    };
    ratelimit::login_succeeded(state, &mobile, standing).await?;
    if user.disabled {
        let e = AuditEvent::denied(Event::LoginFailed, meta, "login refused", "account_disabled").user(user.user_id);
        state.audit.record(e).await;
        return Err(ApiError::AccountDisabled);
    }
    let old_hash = user.password_hash.clone();
    let (session, refresh) = {
        let (state, meta) = (state.clone(), meta.clone());
        detached(async move { open_checked(&state, user, device, &meta).await }).await?
    };
    if let Some(password) = rehash {
        let state = state.clone();
        detached(async move { upgrade_hash(&state, session.user_id, &old_hash, password).await }).await;
    }
    let claims = state.keys.claims_for(
        session.user_id,
        &session.session_id,
        session.login_time,
        session.login_time,
    );
    let token = state.keys.sign(&claims).map_err(ApiError::Internal)?;
    Ok(LoginOk {
        token,
        user_id: session.user_id,
        session_id: session.session_id.encode(),
        expires_in: state.keys.access_ttl(),
        refresh_token: refresh.encode(),
        refresh_expires_in: session.expires_at - session.login_time,
    })
}

/// Replaces a proven password's legacy or outdated hash with a current Argon2id one.
/// Best effort: the login has succeeded either way, and the next one tries again.
async fn upgrade_hash(state: &AppState, user_id: i64, old_hash: &str, password: String) {
    let result = match state.hasher.hash(password).await {
        Ok(new_hash) => state
            .users
            .replace_password_hash(user_id, old_hash, &new_hash)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(true) => tracing::info!(user_id, "password hash upgraded to the current Argon2id parameters"),
        Ok(false) => {} // changed meanwhile: the newer hash stands
        Err(e) => tracing::warn!(user_id, error = %e, "password hash upgrade deferred"),
    }
}

/// Opens a session for a user whose password was just verified, then reads the
/// account again (recording the login in the same step, when it stands): a
/// password change or a disable that landed while the password was being checked
/// ends the new session at once. (Those changes end sessions after their write,
/// and this reads after its session exists, so whichever comes second sees the
/// other.)
async fn open_checked(
    state: &AppState,
    user: UserRecord,
    device: Option<String>,
    meta: &RequestMeta,
) -> Result<(Session, RefreshToken), ApiError> {
    let refuse = |err: ApiError| {
        let e = AuditEvent::denied(Event::LoginFailed, meta, "login refused", err.code()).user(user.user_id);
        async move {
            state.audit.record(e).await;
            Err(err)
        }
    };
    let (session, refresh) = match sessions::open(state, user.user_id, device, meta).await {
        Ok(opened) => opened,
        Err(err) => return refuse(err).await,
    };
    let now_user = match state
        .users
        .record_login(user.user_id, &user.password_hash, session.login_time)
        .await
    {
        Ok(u) => Ok(u),
        Err(e) => {
            // Recording is bookkeeping: a write that fails (a store busy with an
            // import, say) must not fail the login, but the re-check must still run.
            tracing::warn!(error = %e, user_id = user.user_id, "could not record last_login");
            state.users.find_by_id(user.user_id).await
        }
    };
    let still_valid = match &now_user {
        Ok(Some(u)) => u.password_hash == user.password_hash && !u.disabled,
        _ => false,
    };
    if !still_valid {
        if let Err(e) = state.sessions.revoke(user.user_id, &session.session_id).await {
            tracing::error!(error = %e, user_id = user.user_id, "could not end a session opened across an account change");
        }
        let err = match now_user {
            Err(e) => e.into(),
            Ok(Some(u)) if u.disabled => ApiError::AccountDisabled,
            _ => ApiError::InvalidCredentials,
        };
        return refuse(err).await;
    }
    state.profiles.forget(user.user_id).await;
    let e = AuditEvent::ok(Event::Login, meta, "logged in")
        .user(user.user_id)
        .session(&session.session_id);
    state.audit.record(e).await;
    Ok((session, refresh))
}

/// The caller's profile, for `GET /passport/me` (see `profiles` for how fresh).
pub async fn profile(state: &AppState, who: &Identity) -> Result<ProfileJson, ApiError> {
    state.profiles.get(&*state.users, who.user_id).await
}

/// Changes the caller's password after checking the old one; ends every session.
pub async fn change_password(
    state: &AppState,
    who: &Identity,
    old_password: String,
    new_password: String,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    let user = state.users.find_by_id(who.user_id).await?.ok_or(ApiError::NotFound)?;
    check_new_password(state, &new_password, &user.mobile)?;
    if !state.hasher.verify(old_password, Some(user.password_hash)).await? {
        let e = AuditEvent::denied(
            Event::PasswordChanged,
            meta,
            "password change refused",
            "wrong_password",
        )
        .user(who.user_id)
        .session(&who.session_id);
        state.audit.record(e).await;
        return Err(ApiError::WrongPassword);
    }
    let hash = state.hasher.hash(new_password).await?;
    apply(
        state,
        who.user_id,
        AccountChange::PasswordHash(hash),
        meta,
        "ended by password change",
    )
    .await?;
    let e = AuditEvent::ok(Event::PasswordChanged, meta, "password changed")
        .user(who.user_id)
        .session(&who.session_id);
    state.audit.record(e).await;
    Ok(())
}

/// An administrative or self-service change to an account.
enum AccountChange {
    PasswordHash(String),
    Disabled(bool),
}

/// Writes an account change and, unless it re-enables the account, ends every
/// session of the user: before the write (so a failure there changes nothing)
/// and after it (so a login racing the write cannot keep a session; see
/// `open_checked`). Detached from the request, so a client that disconnects
/// cannot stop it halfway. Returns how many sessions ended.
async fn apply(
    state: &AppState,
    user_id: i64,
    change: AccountChange,
    meta: &RequestMeta,
    why: &'static str,
) -> Result<usize, ApiError> {
    let (state, meta) = (state.clone(), meta.clone());
    detached(async move {
        let ends_sessions = !matches!(change, AccountChange::Disabled(false));
        let mut ended = 0;
        if ends_sessions {
            ended += sessions::end_all(&state, user_id, &meta, why).await?;
        }
        let found = match &change {
            AccountChange::PasswordHash(hash) => state.users.set_password_hash(user_id, hash).await?,
            AccountChange::Disabled(d) => state.users.set_disabled(user_id, *d).await?,
        };
        if !found {
            return Err(ApiError::NotFound);
        }
        if ends_sessions {
            ended += sessions::end_all(&state, user_id, &meta, why).await?;
        }
        Ok(ended)
    })
    .await
}

/// Looks a user up by (any form of) their mobile number.
pub async fn find(state: &AppState, mobile: &str) -> Result<Option<UserRecord>, ApiError> {
    let mobile = normalize_mobile(state, mobile)?;
    Ok(state.users.find_by_mobile(&mobile).await?)
}

/// Administrative password set (`passport user passwd`); ends every session.
pub async fn set_password(
    state: &AppState,
    user: &UserRecord,
    password: String,
    meta: &RequestMeta,
) -> Result<usize, ApiError> {
    check_new_password(state, &password, &user.mobile)?;
    let hash = state.hasher.hash(password).await?;
    let n = apply(
        state,
        user.user_id,
        AccountChange::PasswordHash(hash),
        meta,
        "ended by password reset",
    )
    .await?;
    let e = AuditEvent::ok(Event::PasswordChanged, meta, "password set by command").user(user.user_id);
    state.audit.record(e).await;
    Ok(n)
}

/// Disables or enables an account. Disabling ends every session.
pub async fn set_disabled(
    state: &AppState,
    user: &UserRecord,
    disabled: bool,
    meta: &RequestMeta,
) -> Result<usize, ApiError> {
    let n = apply(
        state,
        user.user_id,
        AccountChange::Disabled(disabled),
        meta,
        "ended by disabling the account",
    )
    .await?;
    let (event, msg) = if disabled {
        (Event::UserDisabled, "account disabled")
    } else {
        (Event::UserEnabled, "account enabled")
    };
    state
        .audit
        .record(AuditEvent::ok(event, meta, msg).user(user.user_id))
        .await;
    Ok(n)
}
