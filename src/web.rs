//! Serves the browser client from `web/`: `index.html` for the client's own routes and the files under
//! `web/assets/`. Release builds embed the files in the binary; debug builds read them from disk on every
//! request (rust-embed's default), so the client can be edited without rebuilding.
//!
//! Every page carries a Content-Security-Policy without inline scripts, so a message that slips past
//! the client's text rendering still cannot run code.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "web/"]
#[include = "index.html"]
#[include = "admin.html"]
#[include = "assets/**/*"]
struct Files;

/// `connect-src 'self'` also allows WebSockets to the same host and port (CSP level 3).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The client's pages and assets. Paths the client routes itself all answer with `index.html`.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/login", get(index))
        .route("/register", get(index))
        .route("/invite/{code}", get(index))
        .route("/channels/{*rest}", get(index))
        .route("/settings", get(index))
        .route("/assets/{*path}", get(asset))
        // A wrong method is the contract's JSON error, not axum's empty 405.
        .method_not_allowed_fallback(|| async { chat::Error::MethodNotAllowed })
}

async fn index() -> Response {
    file("index.html", "no-cache")
}

async fn asset(Path(path): Path<String>) -> Response {
    // Debug builds read from disk: never let a path climb out of web/assets.
    if path.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") || path.contains('\\') {
        return not_found();
    }
    // Modules are not content-hashed, so browsers must revalidate; the ETag keeps that cheap.
    file(&format!("assets/{path}"), "no-cache")
}

/// Answers with an embedded file (or a JSON 404), its content type, ETag and the security headers.
pub fn file(path: &str, cache: &'static str) -> Response {
    let Some(f) = Files::get(path) else {
        return not_found();
    };
    let etag = format!("\"{}\"", hex(&f.metadata.sha256_hash()[..12]));
    let mut res = (StatusCode::OK, f.data.into_owned()).into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(f.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

fn not_found() -> Response {
    let body = serde_json::json!({"code": "not_found", "message": "no such file"});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
