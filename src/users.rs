//! Accounts: register, authenticate (login), profile, password change, and the
//! administrative changes the command line makes.

use std::sync::Arc;

use serde::Serialize;

use crate::audit::{Audit, AuditEvent, Event, RequestMeta};
use crate::config::Config;
use crate::error::{ApiError, BadInput};
use crate::identify::Identity;
use crate::passwords::{self, Hasher};
use crate::profiles::{ProfileJson, Profiles};
use crate::ratelimit::RateLimiter;
use crate::refresh::RefreshToken;
use crate::sessions::Sessions;
use crate::state::detached;
use crate::store::{Session, UserRecord, UserStore};
use crate::tokens::KeyRing;

/// Longest `device` label kept with a session.
const MAX_DEVICE_CHARS: usize = 128;

/// The role every user has and keeps.
pub const VIEWER: &str = "viewer";

/// SPEC §10: a role is `[a-z][a-z0-9_-]{0,31}`.
pub fn is_role_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 32
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// What a new account's mobile number and password must be.
#[derive(Clone, Copy, Debug)]
pub struct AccountRules {
    /// Region of mobile numbers given without `+`.
    pub default_region: phonenumber::country::Id,
    pub password_min_length: usize,
}

impl AccountRules {
    pub fn from_config(config: &Config) -> AccountRules {
        AccountRules {
            default_region: config.default_region,
            password_min_length: config.password_min_length,
        }
    }

    /// The E.164 form of a mobile number in the default region.
    pub fn normalize_mobile(&self, raw: &str) -> Result<String, ApiError> {
        crate::phone::normalize(raw, self.default_region).ok_or(ApiError::InvalidParams(BadInput::Mobile))
    }

    /// The stored form to look an account up by: the normalized number, or, for a
    /// number the validity rules refuse but written exactly as stored (`+` and
    /// digits), that form. An account registered before the rules followed
    /// libphonenumber this closely can still log in and be administered; no new
    /// account gets such a number, since registering normalizes strictly.
    pub fn lookup_mobile(&self, raw: &str) -> Result<String, ApiError> {
        self.normalize_mobile(raw).or_else(|refused| {
            let digits = raw.strip_prefix('+').unwrap_or("");
            let stored_form = (8..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0');
            if stored_form {
                Ok(raw.to_owned())
            } else {
                Err(refused)
            }
        })
    }

    /// The password policy for a new password of the account with this (E.164) mobile.
    fn check_new_password(&self, password: &str, mobile: &str) -> Result<(), ApiError> {
        passwords::check_policy(password, self.password_min_length, Some(mobile)).map_err(ApiError::WeakPassword)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginOk {
    pub token: String,
    pub user_id: i64,
    pub session_id: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub refresh_expires_in: i64,
}

/// An administrative or self-service change to an account.
enum AccountChange {
    PasswordHash(String),
    Disabled(bool),
}

/// Everything an account operation uses; cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    pub users: Arc<dyn UserStore>,
    pub sessions: Sessions,
    pub limiter: RateLimiter,
    pub hasher: Hasher,
    pub keys: Arc<KeyRing>,
    pub profiles: Arc<Profiles>,
    pub audit: Audit,
    pub rules: AccountRules,
}

impl Accounts {
    /// Creates an account with the `viewer` role; returns its id.
    pub async fn register(&self, mobile: &str, password: String, meta: &RequestMeta) -> Result<i64, ApiError> {
        self.limiter.register_attempt(meta).await?;
        let mobile = self.rules.normalize_mobile(mobile)?;
        self.rules.check_new_password(&password, &mobile)?;
        let hash = self.hasher.hash(password).await?;
        let user_id = self
            .users
            .create(&mobile, &hash, &[VIEWER.to_owned()], crate::clock::now())
            .await?;
        self.audit
            .record(AuditEvent::ok(Event::Register, meta, "registered").user(user_id))
            .await;
        Ok(user_id)
    }

    /// Checks a password and opens a session. An unknown mobile and a wrong password
    /// get the same answer after the same work (a verify against a dummy hash).
    pub async fn login(
        &self,
        mobile: &str,
        password: String,
        device: Option<String>,
        meta: &RequestMeta,
    ) -> Result<LoginOk, ApiError> {
        self.limiter.login_attempt(meta).await?;
        let mobile = self.rules.lookup_mobile(mobile)?;
        if let Some(d) = &device {
            if d.chars().count() > MAX_DEVICE_CHARS || d.chars().any(char::is_control) {
                return Err(ApiError::InvalidParams(BadInput::Device));
            }
        }
        let standing = self.limiter.check_account(&mobile, meta).await?;
        let user = self.users.find_by_mobile(&mobile).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let user_id = user.as_ref().map(|u| u.user_id);
        // A legacy or outdated hash is replaced once the password has been proven.
        let rehash = stored
            .as_deref()
            .filter(|h| passwords::needs_rehash(h))
            .map(|_| password.clone());
        let verified = self.hasher.verify(password, stored).await?;
        let user = match user {
            Some(u) if verified => u,
            _ => {
                self.limiter.login_failed(&mobile).await?;
                let mut e = AuditEvent::denied(Event::LoginFailed, meta, "login failed", "invalid_credentials");
                e.user_id = user_id;
                self.audit.record(e).await;
                return Err(ApiError::InvalidCredentials);
            }
        };
        self.limiter.login_succeeded(&mobile, standing).await?;
        if user.disabled {
            let e =
                AuditEvent::denied(Event::LoginFailed, meta, "login refused", "account_disabled").user(user.user_id);
            self.audit.record(e).await;
            return Err(ApiError::AccountDisabled);
        }
        let old_hash = user.password_hash.clone();
        let (session, refresh) = {
            let (this, meta) = (self.clone(), meta.clone());
            detached(async move { this.open_checked(user, device, &meta).await }).await?
        };
        if let Some(password) = rehash {
            let this = self.clone();
            detached(async move { this.upgrade_hash(session.user_id, &old_hash, password).await }).await;
        }
        let claims = self.keys.claims_for(
            session.user_id,
            &session.session_id,
            session.login_time,
            session.login_time,
        );
        let token = self.keys.sign(&claims).map_err(ApiError::Internal)?;
        Ok(LoginOk {
            token,
            user_id: session.user_id,
            session_id: session.session_id.encode(),
            expires_in: self.keys.access_ttl(),
            refresh_token: refresh.encode(),
            refresh_expires_in: session.expires_at - session.login_time,
        })
    }

    /// Replaces a proven password's legacy or outdated hash with a current Argon2id one.
    /// Best effort: the login has succeeded either way, and the next one tries again.
    async fn upgrade_hash(&self, user_id: i64, old_hash: &str, password: String) {
        let result = match self.hasher.hash(password).await {
            Ok(new_hash) => self
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
        &self,
        user: UserRecord,
        device: Option<String>,
        meta: &RequestMeta,
    ) -> Result<(Session, RefreshToken), ApiError> {
        let refuse = |err: ApiError| {
            let e = AuditEvent::denied(Event::LoginFailed, meta, "login refused", err.code()).user(user.user_id);
            async move {
                self.audit.record(e).await;
                Err(err)
            }
        };
        let (session, refresh) = match self.sessions.open(user.user_id, device, meta).await {
            Ok(opened) => opened,
            Err(err) => return refuse(err).await,
        };
        let now_user = match self
            .users
            .record_login(user.user_id, &user.password_hash, session.login_time)
            .await
        {
            Ok(u) => Ok(u),
            Err(e) => {
                // Recording is bookkeeping: a write that fails (a store busy with an
                // import, say) must not fail the login, but the re-check must still run.
                tracing::warn!(error = %e, user_id = user.user_id, "could not record last_login");
                self.users.find_by_id(user.user_id).await
            }
        };
        let still_valid = match &now_user {
            Ok(Some(u)) => u.password_hash == user.password_hash && !u.disabled,
            _ => false,
        };
        if !still_valid {
            if let Err(e) = self.sessions.store.revoke(user.user_id, &session.session_id).await {
                tracing::error!(error = %e, user_id = user.user_id, "could not end a session opened across an account change");
            }
            let err = match now_user {
                Err(e) => e.into(),
                Ok(Some(u)) if u.disabled => ApiError::AccountDisabled,
                _ => ApiError::InvalidCredentials,
            };
            return refuse(err).await;
        }
        self.profiles.forget(user.user_id).await;
        let e = AuditEvent::ok(Event::Login, meta, "logged in")
            .user(user.user_id)
            .session(&session.session_id);
        self.audit.record(e).await;
        Ok((session, refresh))
    }

    /// The caller's profile, for `GET /passport/me` (see `profiles` for how fresh).
    pub async fn profile(&self, who: &Identity) -> Result<ProfileJson, ApiError> {
        self.profiles.get(&*self.users, who.user_id).await
    }

    /// Changes the caller's password after checking the old one; ends every session.
    pub async fn change_password(
        &self,
        who: &Identity,
        old_password: String,
        new_password: String,
        meta: &RequestMeta,
    ) -> Result<(), ApiError> {
        let user = self.users.find_by_id(who.user_id).await?.ok_or(ApiError::NotFound)?;
        self.rules.check_new_password(&new_password, &user.mobile)?;
        if !self.hasher.verify(old_password, Some(user.password_hash)).await? {
            let e = AuditEvent::denied(
                Event::PasswordChanged,
                meta,
                "password change refused",
                "wrong_password",
            )
            .user(who.user_id)
            .session(&who.session_id);
            self.audit.record(e).await;
            return Err(ApiError::WrongPassword);
        }
        let hash = self.hasher.hash(new_password).await?;
        let change = AccountChange::PasswordHash(hash);
        self.apply(who.user_id, change, meta, "ended by password change")
            .await?;
        let e = AuditEvent::ok(Event::PasswordChanged, meta, "password changed")
            .user(who.user_id)
            .session(&who.session_id);
        self.audit.record(e).await;
        Ok(())
    }

    /// Writes an account change and, unless it re-enables the account, ends every
    /// session of the user: before the write (so a failure there changes nothing)
    /// and after it (so a login racing the write cannot keep a session; see
    /// `open_checked`). Detached from the request, so a client that disconnects
    /// cannot stop it halfway. Returns how many sessions ended.
    async fn apply(
        &self,
        user_id: i64,
        change: AccountChange,
        meta: &RequestMeta,
        why: &'static str,
    ) -> Result<usize, ApiError> {
        let (this, meta) = (self.clone(), meta.clone());
        detached(async move {
            let ends_sessions = !matches!(change, AccountChange::Disabled(false));
            let mut ended = 0;
            if ends_sessions {
                ended += this.sessions.end_all(user_id, &meta, why).await?;
            }
            let found = match &change {
                AccountChange::PasswordHash(hash) => this.users.set_password_hash(user_id, hash).await?,
                AccountChange::Disabled(d) => this.users.set_disabled(user_id, *d).await?,
            };
            if !found {
                return Err(ApiError::NotFound);
            }
            if ends_sessions {
                ended += this.sessions.end_all(user_id, &meta, why).await?;
            }
            Ok(ended)
        })
        .await
    }

    /// Grants (`grant`) or withdraws a role; false when the user already had it, or
    /// did not. Running servers see it within a second (the profile cache's bound);
    /// decisions that need a role read the account afresh.
    pub async fn change_role(
        &self,
        user: &UserRecord,
        role: &str,
        grant: bool,
        meta: &RequestMeta,
    ) -> Result<bool, ApiError> {
        if !is_role_name(role) {
            return Err(ApiError::InvalidParams(BadInput::Role));
        }
        if role == VIEWER && !grant {
            return Err(ApiError::InvalidParams(BadInput::ViewerRole));
        }
        let mut current = user.roles.clone();
        // Compare-and-set, read again when another change landed first.
        for _ in 0..5 {
            if current.iter().any(|r| r == role) == grant {
                return Ok(false);
            }
            let mut next: Vec<String> = current.iter().filter(|r| *r != role).cloned().collect();
            if grant {
                next.push(role.to_owned());
            }
            if self.users.replace_roles(user.user_id, &current, &next).await? {
                self.profiles.forget(user.user_id).await;
                let (event, msg) = if grant {
                    (Event::RoleGranted, "role granted")
                } else {
                    (Event::RoleWithdrawn, "role withdrawn")
                };
                self.audit
                    .record(AuditEvent::ok(event, meta, msg).user(user.user_id))
                    .await;
                return Ok(true);
            }
            current = self
                .users
                .find_by_id(user.user_id)
                .await?
                .ok_or(ApiError::NotFound)?
                .roles;
        }
        Err(ApiError::StoreUnavailable("the roles kept changing".into()))
    }

    /// Looks a user up by (any form of) their mobile number.
    pub async fn find(&self, mobile: &str) -> Result<Option<UserRecord>, ApiError> {
        let mobile = self.rules.lookup_mobile(mobile)?;
        Ok(self.users.find_by_mobile(&mobile).await?)
    }

    /// Administrative password set (`passport user passwd`); ends every session.
    pub async fn set_password(
        &self,
        user: &UserRecord,
        password: String,
        meta: &RequestMeta,
    ) -> Result<usize, ApiError> {
        self.rules.check_new_password(&password, &user.mobile)?;
        let hash = self.hasher.hash(password).await?;
        let change = AccountChange::PasswordHash(hash);
        let n = self
            .apply(user.user_id, change, meta, "ended by password reset")
            .await?;
        let e = AuditEvent::ok(Event::PasswordChanged, meta, "password set by command").user(user.user_id);
        self.audit.record(e).await;
        Ok(n)
    }

    /// Disables or enables an account. Disabling ends every session.
    pub async fn set_disabled(&self, user: &UserRecord, disabled: bool, meta: &RequestMeta) -> Result<usize, ApiError> {
        let change = AccountChange::Disabled(disabled);
        let n = self
            .apply(user.user_id, change, meta, "ended by disabling the account")
            .await?;
        let (event, msg) = if disabled {
            (Event::UserDisabled, "account disabled")
        } else {
            (Event::UserEnabled, "account enabled")
        };
        self.audit
            .record(AuditEvent::ok(event, meta, msg).user(user.user_id))
            .await;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overflow, RateLimit};
    use crate::credentials::Scheme;
    use crate::identify::identify;
    use crate::ratelimit::Limits;
    use crate::service_fixtures::{from_ip, policy, Fixture, GENEROUS, PASSWORD};

    fn one_session(f: &Fixture) -> Accounts {
        f.accounts(policy(1, Overflow::EvictOldest), GENEROUS)
    }

    /// Accounts over a fresh store, with the user 13800000001 registered.
    async fn with_user(max_sessions: u32, limits: Limits) -> (Fixture, Accounts) {
        let f = Fixture::new().await;
        let accounts = f.accounts(policy(max_sessions, Overflow::EvictOldest), limits);
        let meta = RequestMeta::command();
        accounts.register("13800000001", PASSWORD.into(), &meta).await.unwrap();
        (f, accounts)
    }

    async fn login(accounts: &Accounts, mobile: &str, password: &str) -> Result<LoginOk, ApiError> {
        accounts
            .login(mobile, password.to_owned(), None, &from_ip("192.0.2.1"))
            .await
    }

    /// A login of 13800000001, and the account as stored.
    async fn logged_in(accounts: &Accounts) -> (LoginOk, UserRecord) {
        let ok = login(accounts, "13800000001", PASSWORD).await.unwrap();
        let user = accounts.find("13800000001").await.unwrap().unwrap();
        (ok, user)
    }

    /// The identity a login's token gives, checked as every request checks it.
    async fn who(f: &Fixture, ok: &LoginOk) -> Result<Identity, ApiError> {
        let header = format!("JWT {}", ok.token);
        identify(&f.keys, f.session_store(), Some(header.as_bytes()))
            .await
            .map_err(|r| r.error)
    }

    #[tokio::test]
    async fn register_keeps_the_e164_mobile_and_refuses_bad_input() {
        let f = Fixture::new().await;
        let accounts = one_session(&f);
        let meta = from_ip("192.0.2.1");
        let id = accounts
            .register("138 0000 0001", PASSWORD.into(), &meta)
            .await
            .unwrap();
        let found = accounts.find("+8613800000001").await.unwrap().unwrap();
        assert_eq!((found.user_id, found.roles.clone()), (id, vec!["viewer".to_owned()]));
        assert!(found.password_hash.starts_with("$argon2id$"));

        for (mobile, password, expected) in [
            ("13800000001", PASSWORD, "mobile_taken"),
            ("12345", PASSWORD, "invalid_params"),
            ("13800000002", "password", "weak_password"),
            ("13800000002", "short", "weak_password"),
            ("13800000002", "13800000002 is mine", "weak_password"),
        ] {
            let err = accounts.register(mobile, password.into(), &meta).await.unwrap_err();
            assert_eq!(err.code(), expected, "{mobile} {password}");
        }
        assert_eq!(f.count_events("register").await, 1);
    }

    #[tokio::test]
    async fn login_answers_an_unknown_mobile_as_a_wrong_password() {
        let (f, accounts) = with_user(1, GENEROUS).await;
        let unknown = login(&accounts, "13800000009", PASSWORD).await.unwrap_err();
        let wrong = login(&accounts, "13800000001", "not the password").await.unwrap_err();
        assert_eq!(
            (unknown.code(), wrong.code()),
            ("invalid_credentials", "invalid_credentials")
        );
        assert_eq!(f.count_events("login_failed").await, 2);

        let ok = login(&accounts, "13800000001", PASSWORD).await.unwrap();
        let me = who(&f, &ok).await.unwrap();
        assert_eq!(
            (me.user_id, me.session_id.encode()),
            (ok.user_id, ok.session_id.clone())
        );
        assert_eq!(ok.expires_in, f.keys.access_ttl());
        assert!(RefreshToken::parse(&ok.refresh_token).is_some());
        let user = accounts.users.find_by_id(ok.user_id).await.unwrap().unwrap();
        assert_eq!(user.last_login, Some(me.login_time));
    }

    #[tokio::test]
    async fn an_account_out_of_failures_is_refused_even_with_the_right_password() {
        let login_account = RateLimit { count: 2, window: 900 };
        let (f, accounts) = with_user(
            1,
            Limits {
                login_account,
                ..GENEROUS
            },
        )
        .await;
        for _ in 0..2 {
            assert!(login(&accounts, "13800000001", "wrong").await.is_err());
        }
        // Now even the right password is refused, the same way, and opens nothing.
        let err = login(&accounts, "13800000001", PASSWORD).await.unwrap_err();
        assert_eq!(err.code(), "rate_limited");
        assert_eq!(f.count_events("login").await, 0);
        let user = accounts.find("13800000001").await.unwrap().unwrap();
        assert_eq!(user.last_login, None);
    }

    #[tokio::test]
    async fn a_second_login_replaces_the_first_session() {
        let (f, accounts) = with_user(1, GENEROUS).await;
        let first = login(&accounts, "13800000001", PASSWORD).await.unwrap();
        let second = login(&accounts, "13800000001", PASSWORD).await.unwrap();
        assert_eq!(who(&f, &first).await.unwrap_err().code(), "session_replaced");
        assert!(who(&f, &second).await.is_ok());
    }

    #[tokio::test]
    async fn disabling_ends_sessions_and_refuses_logins_until_enabled() {
        let (f, accounts) = with_user(1, GENEROUS).await;
        let meta = RequestMeta::command();
        let (ok, user) = logged_in(&accounts).await;

        assert_eq!(accounts.set_disabled(&user, true, &meta).await.unwrap(), 1);
        assert_eq!(who(&f, &ok).await.unwrap_err().code(), "session_revoked");
        let err = login(&accounts, "13800000001", PASSWORD).await.unwrap_err();
        assert_eq!(err.code(), "account_disabled");

        assert_eq!(accounts.set_disabled(&user, false, &meta).await.unwrap(), 0);
        login(&accounts, "13800000001", PASSWORD).await.unwrap();
        assert_eq!(f.count_events("user_disabled").await, 1);
        assert_eq!(f.count_events("user_enabled").await, 1);
    }

    #[tokio::test]
    async fn a_password_change_needs_the_old_one_and_ends_every_session() {
        let (f, accounts) = with_user(2, GENEROUS).await;
        let meta = from_ip("192.0.2.1");
        let a = login(&accounts, "13800000001", PASSWORD).await.unwrap();
        let b = login(&accounts, "13800000001", PASSWORD).await.unwrap();
        let me = who(&f, &a).await.unwrap();
        let new = "violet tangerine submarine";

        let err = accounts
            .change_password(&me, "wrong".into(), new.into(), &meta)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "wrong_password");
        assert!(who(&f, &b).await.is_ok());

        accounts
            .change_password(&me, PASSWORD.into(), new.into(), &meta)
            .await
            .unwrap();
        for ok in [&a, &b] {
            assert_eq!(who(&f, ok).await.unwrap_err().code(), "session_revoked");
        }
        assert!(login(&accounts, "13800000001", PASSWORD).await.is_err());
        login(&accounts, "13800000001", new).await.unwrap();
    }

    #[tokio::test]
    async fn an_administrative_password_set_ends_sessions() {
        let (f, accounts) = with_user(1, GENEROUS).await;
        let meta = RequestMeta::command();
        let (ok, user) = logged_in(&accounts).await;
        let weak = accounts
            .set_password(&user, "password".into(), &meta)
            .await
            .unwrap_err();
        assert_eq!(weak.code(), "weak_password");
        let n = accounts
            .set_password(&user, "violet tangerine submarine".into(), &meta)
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(who(&f, &ok).await.unwrap_err().code(), "session_revoked");
    }

    #[tokio::test]
    async fn a_legacy_hash_is_replaced_by_argon2id_once_proven() {
        let f = Fixture::new().await;
        let accounts = one_session(&f);
        // werkzeug's pbkdf2 of "密码-pässwörd-1" (tests/fixtures/legacy/hashes.json).
        let legacy =
            "pbkdf2:sha256:1000$7EQNSHDRLDTy7TFZ$d73d705dced16f4a514c3c719b566b459cacebf3c70b4891b0601a1ba1510f24";
        let imported = UserRecord {
            user_id: 42,
            mobile: "+8613800000042".into(),
            password_hash: legacy.into(),
            roles: vec!["viewer".into()],
            disabled: false,
            created_at: 0,
            last_login: None,
        };
        assert!(accounts.users.import(&imported).await.unwrap());
        assert!(login(&accounts, "13800000042", "wrong").await.is_err());
        assert_eq!(
            accounts.users.find_by_id(42).await.unwrap().unwrap().password_hash,
            legacy
        );

        let ok = login(&accounts, "13800000042", "密码-pässwörd-1").await.unwrap();
        assert_eq!(ok.user_id, 42);
        let now = accounts.users.find_by_id(42).await.unwrap().unwrap();
        assert!(now.password_hash.starts_with("$argon2id$"), "{}", now.password_hash);
        login(&accounts, "13800000042", "密码-pässwörd-1").await.unwrap();
    }

    #[tokio::test]
    async fn roles_are_granted_and_withdrawn_once_and_viewer_stays() {
        let (f, accounts) = with_user(1, GENEROUS).await;
        let meta = RequestMeta::command();
        let user = accounts.find("13800000001").await.unwrap().unwrap();
        assert!(accounts.change_role(&user, "streamer", true, &meta).await.unwrap());
        // `user` is now stale: the change reads the account again and keeps both.
        assert!(accounts.change_role(&user, "moderator", true, &meta).await.unwrap());
        let roles = |u: UserRecord| u.roles;
        let now = roles(accounts.find("13800000001").await.unwrap().unwrap());
        assert_eq!(now, ["viewer", "streamer", "moderator"]);
        let user = accounts.find("13800000001").await.unwrap().unwrap();
        assert!(!accounts.change_role(&user, "streamer", true, &meta).await.unwrap());
        assert!(accounts.change_role(&user, "streamer", false, &meta).await.unwrap());
        assert!(!accounts.change_role(&user, "nobody", false, &meta).await.unwrap());
        for (role, grant, code) in [
            ("viewer", false, "invalid_params"),
            ("Streamer", true, "invalid_params"),
            ("9lives", true, "invalid_params"),
            ("", true, "invalid_params"),
        ] {
            let err = accounts.change_role(&user, role, grant, &meta).await.unwrap_err();
            assert_eq!(err.code(), code, "{role}");
        }
        let now = roles(accounts.find("13800000001").await.unwrap().unwrap());
        assert_eq!(now, ["viewer", "moderator"]);
        assert_eq!(f.count_events("role_granted").await, 2);
        assert_eq!(f.count_events("role_withdrawn").await, 1);
    }

    #[test]
    fn role_names_follow_the_spec() {
        for ok in ["viewer", "streamer", "a", "mod_2-x", &"a".repeat(32)] {
            assert!(is_role_name(ok), "{ok}");
        }
        for bad in ["", "Admin", "_x", "-x", "1x", "a b", "a.b", &"a".repeat(33), "é"] {
            assert!(!is_role_name(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_profile_is_the_callers() {
        let (f, accounts) = with_user(1, GENEROUS).await;
        let ok = login(&accounts, "13800000001", PASSWORD).await.unwrap();
        let me = who(&f, &ok).await.unwrap();
        assert_eq!(me.scheme, Scheme::Jwt);
        let profile = serde_json::to_value(accounts.profile(&me).await.unwrap()).unwrap();
        assert_eq!(profile["user_id"], ok.user_id);
        assert_eq!(profile["mobile"], "+8613800000001");
    }
}
