//! Identify (SPEC §5), run on every protected request: parse the header, verify
//! the token, look the session up. One session-store lookup, no user-table query.

use crate::credentials::{self, Scheme};
use crate::error::ApiError;
use crate::ids::SessionId;
use crate::store::{SessionCheck, SessionStore};
use crate::tokens::{KeyRing, TokenError};

/// Who is calling: a verified token of a live session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_id: i64,
    pub session_id: SessionId,
    pub login_time: i64,
    pub scheme: Scheme,
}

/// What identify concluded, and enough to audit a refusal.
pub struct Rejection {
    pub error: ApiError,
    /// The user and session the token named, when it verified that far.
    pub user_id: Option<i64>,
    pub session_id: Option<SessionId>,
}

impl From<ApiError> for Rejection {
    fn from(error: ApiError) -> Self {
        Rejection {
            error,
            user_id: None,
            session_id: None,
        }
    }
}

/// Who the `Authorization` header names, if its token verifies under `keys` and
/// its session is live in `sessions`.
pub async fn identify(
    keys: &KeyRing,
    sessions: &dyn SessionStore,
    authorization: Option<&[u8]>,
) -> Result<Identity, Rejection> {
    let (scheme, token) = credentials::parse(authorization)?;
    let now = crate::clock::now();
    let v = keys.verify(token, now).map_err(|e| match e {
        TokenError::Invalid => ApiError::InvalidToken,
        TokenError::Expired => ApiError::TokenExpired,
    })?;
    let check = sessions.check(v.user_id, &v.session_id, v.login_time, now).await;
    let refuse = |error| Rejection {
        error,
        user_id: Some(v.user_id),
        session_id: Some(v.session_id),
    };
    match check {
        Ok(SessionCheck::Valid) => Ok(Identity {
            user_id: v.user_id,
            session_id: v.session_id,
            login_time: v.login_time,
            scheme,
        }),
        Ok(SessionCheck::Replaced) => Err(refuse(ApiError::SessionReplaced)),
        Ok(SessionCheck::Revoked) => Err(refuse(ApiError::SessionRevoked)),
        // Never allow on doubt.
        Err(e) => Err(refuse(e.into())),
    }
}
