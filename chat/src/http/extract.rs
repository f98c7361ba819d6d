//! Extractors that turn requests into checked values and every rejection into the contract's JSON
//! error: bearer authentication with rate limits, JSON bodies, path ids and query strings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::Chat;
use crate::error::Error;
use crate::service::accounts::Caller;

/// The peer address of the TCP connection (the binary serves with connect info). Without it
/// (in-process tests using `oneshot`) every request counts as coming from 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        Ok(ClientIp(ip))
    }
}

/// An authenticated caller (`Authorization: Bearer <token>`), rate-limited per IP and per user.
#[derive(Debug, Clone)]
pub struct Auth(pub Caller);

impl FromRequestParts<Arc<Chat>> for Auth {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, chat: &Arc<Chat>) -> Result<Self, Error> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, chat).await?;
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).map(|_| &v[7..]))
            .unwrap_or_default();
        // A missing token still counts against the IP's limit before it is refused.
        let mut caller = chat.authorize(token.trim(), ip).await?;
        caller.audit_reason =
            parts.headers.get("x-audit-log-reason").and_then(|v| crate::service::audit::parse_reason(v.as_bytes()));
        Ok(Auth(caller))
    }
}

/// A JSON body; malformed JSON, wrong types and oversized bodies become documented errors.
#[derive(Debug, Clone)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Error;
    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> Error {
    match rejection {
        JsonRejection::JsonDataError(e) => Error::bad_request("invalid_body", e.body_text()),
        JsonRejection::JsonSyntaxError(_) => Error::bad_request("malformed_json", "the body is not valid JSON"),
        JsonRejection::MissingJsonContentType(_) => {
            Error::bad_request("unsupported_content_type", "send the body as application/json")
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        other => Error::bad_request("invalid_body", other.body_text()),
    }
}

/// Path parameters; a malformed id is `invalid_id`.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| Error::bad_request("invalid_id", "a path parameter is not a valid id"))
    }
}

/// Query parameters; unparsable values are `invalid_query`.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| Error::bad_request("invalid_query", e.body_text()))
    }
}

/// A JSON body that may be absent (empty): then `T::default()`.
#[derive(Debug, Clone)]
pub struct OptionalBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalBody<T> {
    type Rejection = Error;
    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let has_body = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v != "0")
            && req.headers().contains_key(axum::http::header::CONTENT_TYPE);
        if !has_body {
            return Ok(OptionalBody(T::default()));
        }
        Body::<T>::from_request(req, state).await.map(|Body(v)| OptionalBody(v))
    }
}
