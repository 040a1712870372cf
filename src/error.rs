//! The one error type of the API (SPEC §2): every failure a client can see, with
//! its status, its machine code and its message in each language, and every
//! conversion into it from the layers below.
//!
//! Domain code returns `ApiError`; the HTTP surface renders it as the envelope
//! (`http/response.rs`), the command line as one line on stderr. 5xx messages stay
//! opaque: the cause is in the error's `Display`, for tracing, never for a client.

use axum::http::StatusCode;

use crate::i18n::Lang;
use crate::passwords::{HashError, PasswordProblem};
use crate::store::StoreError;

/// Which part of a request was unusable (400 `invalid_params`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadInput {
    /// The body is not JSON at all.
    MalformedJson,
    /// JSON, but a field is missing or has the wrong type.
    WrongShape,
    /// Not a valid mobile number of its region.
    Mobile,
    /// `device` too long or with control characters.
    Device,
    /// A role name that is not `[a-z][a-z0-9_-]{0,31}`.
    Role,
    /// An attempt to withdraw `viewer`, which every user keeps.
    ViewerRole,
    /// A stream name that is not `[a-z0-9][a-z0-9_-]{0,63}`.
    StreamName,
    /// A stream access other than `login` or `public`.
    Access,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid params: {0:?}")]
    InvalidParams(BadInput),
    #[error("weak password: {0:?}")]
    WeakPassword(PasswordProblem),
    #[error("missing credentials")]
    MissingCredentials,
    #[error("malformed credentials")]
    MalformedCredentials,
    #[error("invalid token")]
    InvalidToken,
    #[error("token expired")]
    TokenExpired,
    #[error("session revoked")]
    SessionRevoked,
    #[error("session replaced")]
    SessionReplaced,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("refresh token reused")]
    RefreshTokenReused,
    #[error("account disabled")]
    AccountDisabled,
    #[error("wrong password")]
    WrongPassword,
    #[error("session limit reached")]
    SessionLimitReached,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("mobile taken")]
    MobileTaken,
    #[error("stream taken")]
    StreamTaken,
    #[error("forbidden")]
    Forbidden,
    #[error("invalid ticket")]
    InvalidTicket,
    #[error("invalid stream key")]
    InvalidStreamKey,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("password hashing queue full")]
    Busy,
    /// Throttled; retry after this many seconds.
    #[error("rate limited")]
    RateLimited(i64),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => ApiError::StoreUnavailable(why),
            StoreError::Conflict => ApiError::MobileTaken,
            StoreError::Other(e) => ApiError::Internal(e),
        }
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ApiError::Busy,
            HashError::Failed(why) => ApiError::Internal(anyhow::anyhow!(why)),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidParams(_) | WeakPassword(_) => StatusCode::BAD_REQUEST,
            MissingCredentials | MalformedCredentials | InvalidToken | TokenExpired | SessionRevoked
            | SessionReplaced | InvalidCredentials | InvalidRefreshToken | RefreshTokenReused => {
                StatusCode::UNAUTHORIZED
            }
            AccountDisabled | WrongPassword | SessionLimitReached | Forbidden | InvalidTicket | InvalidStreamKey => {
                StatusCode::FORBIDDEN
            }
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            MobileTaken | StreamTaken => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            StoreUnavailable(_) | Busy => StatusCode::SERVICE_UNAVAILABLE,
            RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The machine code clients branch on.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidParams(_) => "invalid_params",
            WeakPassword(_) => "weak_password",
            MissingCredentials => "missing_credentials",
            MalformedCredentials => "malformed_credentials",
            InvalidToken => "invalid_token",
            TokenExpired => "token_expired",
            SessionRevoked => "session_revoked",
            SessionReplaced => "session_replaced",
            InvalidCredentials => "invalid_credentials",
            InvalidRefreshToken => "invalid_refresh_token",
            RefreshTokenReused => "refresh_token_reused",
            AccountDisabled => "account_disabled",
            WrongPassword => "wrong_password",
            SessionLimitReached => "session_limit_reached",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            MobileTaken => "mobile_taken",
            StreamTaken => "stream_taken",
            Forbidden => "forbidden",
            InvalidTicket => "invalid_ticket",
            InvalidStreamKey => "invalid_stream_key",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            Internal(_) => "internal",
            StoreUnavailable(_) => "store_unavailable",
            Busy => "busy",
            RateLimited(_) => "rate_limited",
        }
    }

    /// One error of each kind, for the list of codes the API document gives. The
    /// match in the test below has no wildcard: a new kind does not compile until
    /// it is listed there, and the test fails until it is listed here.
    pub fn one_of_each() -> Vec<ApiError> {
        use ApiError::*;
        vec![
            InvalidParams(BadInput::WrongShape),
            WeakPassword(PasswordProblem::TooLong),
            MissingCredentials,
            MalformedCredentials,
            InvalidToken,
            TokenExpired,
            SessionRevoked,
            SessionReplaced,
            InvalidCredentials,
            InvalidRefreshToken,
            RefreshTokenReused,
            AccountDisabled,
            WrongPassword,
            SessionLimitReached,
            NotFound,
            MethodNotAllowed,
            MobileTaken,
            StreamTaken,
            Forbidden,
            InvalidTicket,
            InvalidStreamKey,
            PayloadTooLarge,
            UnsupportedMediaType,
            Internal(anyhow::anyhow!("example")),
            StoreUnavailable(String::new()),
            Busy,
            RateLimited(1),
        ]
    }

    /// True for the failures RFC 6750 §3.1 calls `invalid_token`.
    pub fn is_token_failure(&self) -> bool {
        matches!(
            self,
            ApiError::InvalidToken | ApiError::TokenExpired | ApiError::SessionRevoked | ApiError::SessionReplaced
        )
    }

    /// The human text; never carries internals or request values.
    pub fn message(&self, lang: Lang) -> String {
        use ApiError::*;
        let zh = lang == Lang::Zh;
        let pick = |en: &str, zh_text: &str| if zh { zh_text.to_owned() } else { en.to_owned() };
        match self {
            InvalidParams(BadInput::MalformedJson) => pick("request body is not valid JSON", "请求体不是合法的 JSON"),
            InvalidParams(BadInput::WrongShape) => {
                pick("a field is missing or has the wrong type", "缺少字段或字段类型错误")
            }
            InvalidParams(BadInput::Mobile) => pick("not a valid mobile number", "手机号码无效"),
            InvalidParams(BadInput::Device) => pick(
                "device name is too long or has control characters",
                "设备名称过长或包含控制字符",
            ),
            InvalidParams(BadInput::Role) => pick(
                "a role is a lowercase letter, then up to 31 of a-z, 0-9, _ and -",
                "角色名须以小写字母开头，其后最多 31 个 a-z、0-9、_ 或 -",
            ),
            InvalidParams(BadInput::ViewerRole) => {
                pick("every user keeps the viewer role", "每个用户都保留 viewer 角色")
            }
            InvalidParams(BadInput::StreamName) => pick(
                "a stream name is a-z or 0-9, then up to 63 of a-z, 0-9, _ and -",
                "直播流名称须以 a-z 或 0-9 开头，其后最多 63 个 a-z、0-9、_ 或 -",
            ),
            InvalidParams(BadInput::Access) => pick("access is login or public", "访问方式须为 login 或 public"),
            WeakPassword(p) => p.message(lang),
            MissingCredentials => pick("authorization required", "需要登录"),
            MalformedCredentials => pick("malformed Authorization header", "Authorization 请求头格式错误"),
            InvalidToken => pick("invalid token", "令牌无效"),
            TokenExpired => pick("token expired, please log in again", "令牌已过期，请重新登录"),
            SessionRevoked => pick("session ended, please log in again", "会话已结束，请重新登录"),
            SessionReplaced => pick(
                "logged in on another device, please log in again",
                "账号已在其他设备登录，请重新登录",
            ),
            InvalidCredentials => pick("wrong mobile number or password", "手机号或密码错误"),
            InvalidRefreshToken => pick("invalid refresh token, please log in again", "刷新令牌无效，请重新登录"),
            RefreshTokenReused => pick(
                "refresh token already used; the session was ended for safety, please log in again",
                "刷新令牌已被使用，为安全起见会话已结束，请重新登录",
            ),
            AccountDisabled => pick("account disabled", "账号已被禁用"),
            WrongPassword => pick("old password is wrong", "原密码错误"),
            SessionLimitReached => pick(
                "too many active sessions, log out elsewhere first",
                "登录设备数已达上限，请先在其他设备退出",
            ),
            NotFound => pick("not found", "资源不存在"),
            MethodNotAllowed => pick("method not allowed", "请求方法不被允许"),
            MobileTaken => pick("mobile number already registered", "手机号已被注册"),
            StreamTaken => pick("stream name already taken", "直播流名称已被占用"),
            Forbidden => pick("not allowed", "无权执行此操作"),
            InvalidTicket => pick("no valid play ticket for this stream", "没有此直播流的有效观看票据"),
            InvalidStreamKey => pick("not this stream's current key", "不是此直播流当前的推流密钥"),
            PayloadTooLarge => pick("request body too large", "请求体过大"),
            UnsupportedMediaType => pick(
                "request body must be JSON (Content-Type: application/json)",
                "请求体必须是 JSON",
            ),
            Internal(_) => pick("internal error", "服务器内部错误"),
            StoreUnavailable(_) => pick("service temporarily unavailable", "服务暂时不可用"),
            Busy => pick("server busy, try again shortly", "服务器繁忙，请稍后重试"),
            RateLimited(_) => pick("too many attempts, try again later", "尝试次数过多，请稍后再试"),
        }
    }

    /// The error a bare status from a layer or the router stands for (no handler ran).
    pub fn from_status(status: StatusCode) -> ApiError {
        match status {
            StatusCode::BAD_REQUEST => ApiError::InvalidParams(BadInput::WrongShape),
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Busy,
            other => ApiError::Internal(anyhow::anyhow!("bare {other} response")),
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`), where the
    /// error says.
    pub fn retry_after(&self) -> Option<i64> {
        match self {
            ApiError::Busy => Some(1),
            ApiError::RateLimited(secs) => Some((*secs).max(1)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_each_lists_every_kind() {
        let listed: Vec<&str> = ApiError::one_of_each().iter().map(|e| e.code()).collect();
        // No wildcard: a new kind stops this from compiling until it is added here
        // and to `one_of_each`.
        let kind = |e: &ApiError| -> usize {
            use ApiError::*;
            match e {
                InvalidParams(_) => 0,
                WeakPassword(_) => 1,
                MissingCredentials => 2,
                MalformedCredentials => 3,
                InvalidToken => 4,
                TokenExpired => 5,
                SessionRevoked => 6,
                SessionReplaced => 7,
                InvalidCredentials => 8,
                InvalidRefreshToken => 9,
                RefreshTokenReused => 10,
                AccountDisabled => 11,
                WrongPassword => 12,
                SessionLimitReached => 13,
                NotFound => 14,
                MethodNotAllowed => 15,
                MobileTaken => 16,
                StreamTaken => 17,
                Forbidden => 18,
                InvalidTicket => 19,
                InvalidStreamKey => 20,
                PayloadTooLarge => 21,
                UnsupportedMediaType => 22,
                Internal(_) => 23,
                StoreUnavailable(_) => 24,
                Busy => 25,
                RateLimited(_) => 26,
            }
        };
        let kinds: std::collections::BTreeSet<usize> = ApiError::one_of_each().iter().map(kind).collect();
        assert_eq!(kinds.len(), 27, "a kind is missing from one_of_each: {listed:?}");
        let codes: std::collections::BTreeSet<&str> = listed.iter().copied().collect();
        assert_eq!(codes.len(), listed.len(), "two kinds share a code");
    }
}
