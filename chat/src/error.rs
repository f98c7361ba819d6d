//! The one error type of the chat API, with its wire form `{code, message, fields?}`.
//!
//! Services return [`Error`]; it renders itself as the contract's JSON error body. Codes are
//! snake_case and stable (listed in docs/api.md); messages are for humans.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing does not exist, or the caller may not see it (ids must not leak existence).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("missing permission {0}")]
    MissingPermission(&'static str),
    /// An action the caller may never do, whatever their permissions (e.g. kick the owner).
    #[error("{0}")]
    Forbidden(&'static str),
    /// Refused for a reason the client shows as it is (code, message): registration closed, an
    /// invite code needed, an account disabled.
    #[error("{1}")]
    Refused(&'static str, &'static str),
    #[error("authentication required")]
    Unauthorized,
    #[error("invalid username or password")]
    InvalidCredentials,
    /// A signed-in user's password, asked again to confirm an account change, did not match: 400,
    /// not 401 — the session is fine, a body field is wrong (a client must not take it for a dead token).
    #[error("the password does not match")]
    WrongPassword,
    #[error("{1}")]
    Conflict(&'static str, &'static str),
    #[error("invalid request fields")]
    Validation(BTreeMap<String, String>),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("this method is not allowed on this route")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    /// An upload over one of its limits (413 with this code).
    #[error("{1}")]
    TooLarge(&'static str, String),
    #[error("rate limited; retry after {0} s")]
    RateLimited(u64),
    /// The channel's slow mode: this member posted less than its period ago.
    #[error("slow mode is on in this channel; you can post again in {0} s")]
    SlowMode(u64),
    #[error("internal error")]
    Internal(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    pub fn field(name: &str, problem: impl Into<String>) -> Self {
        let mut fields = BTreeMap::new();
        fields.insert(name.to_string(), problem.into());
        Error::Validation(fields)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Error::BadRequest { code, message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MissingPermission(_) | Error::Forbidden(_) | Error::Refused(..) => StatusCode::FORBIDDEN,
            Error::Unauthorized | Error::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Error::Conflict(..) => StatusCode::CONFLICT,
            Error::Validation(_) | Error::BadRequest { .. } | Error::WrongPassword => StatusCode::BAD_REQUEST,
            Error::PayloadTooLarge | Error::TooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::RateLimited(_) | Error::SlowMode(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not_found",
            Error::MissingPermission(_) => "missing_permission",
            Error::Forbidden(_) => "forbidden",
            Error::Refused(code, _) => code,
            Error::Unauthorized => "unauthorized",
            Error::InvalidCredentials | Error::WrongPassword => "invalid_credentials",
            Error::Conflict(code, _) => code,
            Error::Validation(_) => "validation_failed",
            Error::BadRequest { code, .. } => code,
            Error::PayloadTooLarge => "payload_too_large",
            Error::TooLarge(code, _) => code,
            Error::MethodNotAllowed => "method_not_allowed",
            Error::RateLimited(_) => "rate_limited",
            Error::SlowMode(_) => "slow_mode",
            Error::Internal(_) => "internal_error",
            Error::Unavailable(_) => "unavailable",
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Error::Conflict("conflict", what),
            other => Error::Internal(other.to_string()),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a BTreeMap<String, String>>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let status = self.status();
        let body = Body {
            code: self.code(),
            message: self.to_string(),
            fields: match &self {
                Error::Validation(f) => Some(f),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Error::RateLimited(secs) | Error::SlowMode(secs) = self
            && let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
