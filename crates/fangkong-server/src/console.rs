//! The browser console (`web/`), served from files compiled into the binary (see
//! `build.rs`): `/` is the single-page application, `/assets/…` its scripts and styles
//! (content-hashed names, cached for a year). Nothing is fetched from elsewhere.
//!
//! `FANGKONG_CONSOLE_DIR=DIR` serves a console built into DIR instead (`npm run build` in
//! `web/`, for working on the console without rebuilding the server).

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// What the console may load: only this server (MapLibre's workers are `blob:` URLs; a
/// deployment's own tile server is reached over https).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob: https:; connect-src 'self' ws: wss: https:; worker-src 'self' blob:; \
     child-src blob:; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Whether this binary was built with the console.
pub fn built() -> bool {
    asset("index.html").is_some()
}

fn asset(name: &str) -> Option<(Cow<'static, [u8]>, &'static str)> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    match DIR.get_or_init(|| std::env::var_os("FANGKONG_CONSOLE_DIR").map(PathBuf::from)) {
        Some(dir) if !name.contains("..") => {
            let bytes = std::fs::read(dir.join(name)).ok()?;
            let kind = ASSETS.iter().find(|(n, _, _)| *n == name).map_or_else(|| guess(name), |(_, _, kind)| *kind);
            Some((Cow::Owned(bytes), kind))
        }
        Some(_) => None,
        None => ASSETS.iter().find(|(n, _, _)| *n == name).map(|(_, bytes, kind)| (Cow::Borrowed(*bytes), *kind)),
    }
}

fn guess(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

/// `/`: the console's page, or a note that this binary was built without it.
pub async fn index() -> Response {
    match asset("index.html") {
        Some((bytes, kind)) => {
            let mut response = (StatusCode::OK, bytes).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            response
        }
        None => Html(
            "<!doctype html><meta charset=utf-8><title>Fangkong</title>\
             <p>This binary was built without the browser console (Node.js was not installed). \
             Install Node.js ≥ 20 and rebuild; the API reference is at <a href=\"/api/docs/\">/api/docs/</a>.",
        )
        .into_response(),
    }
}

/// `/assets/{file}`: a script, style or image of the console.
pub async fn file(Path(file): Path<String>) -> Result<Response, ApiError> {
    let name = format!("assets/{file}");
    let (bytes, kind) = asset(&name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no console file {name}")))?;
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Vite names every asset by its content's hash: a name never changes meaning.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}
