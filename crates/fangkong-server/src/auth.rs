//! Who is calling: extractors that turn a request's credentials and headers into the
//! engine's [`Caller`].
//!
//! * Users send `Authorization: Bearer <token>` (from `POST /api/v1/auth/login`).
//! * Devices send `Authorization: Basic base64(unique_id:secret)`.
//! * Reads of personal data state their purpose in `X-Purpose` (UTF-8, percent-encoded if
//!   it is not ASCII, at most 200 characters).
//!
//! The client address is the TCP peer. Behind a reverse proxy that would be the proxy; a
//! trusted-proxy setting is future work and noted in `docs/security.md`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use fangkong_core::auth::Actor;
use fangkong_engine::{Authenticated, Caller};

use crate::AppState;
use crate::error::ApiError;

pub const PURPOSE_HEADER: &str = "x-purpose";
const MAX_PURPOSE_CHARS: usize = 200;

/// The address and stated purpose of any request.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub purpose: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<RequestMeta, ApiError> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string());
        let purpose = match parts.headers.get(PURPOSE_HEADER) {
            None => None,
            Some(value) => Some(decode_purpose(value.as_bytes()).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_purpose",
                    format!("X-Purpose must be UTF-8 text (percent-encoded if not ASCII), at most {MAX_PURPOSE_CHARS} characters"),
                )
            })?),
        };
        Ok(RequestMeta { ip, purpose })
    }
}

fn decode_purpose(bytes: &[u8]) -> Option<String> {
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(decoded).ok()?;
    let text = text.trim().to_string();
    (!text.is_empty() && text.chars().count() <= MAX_PURPOSE_CHARS && !fangkong_core::text::has_hidden(&text, false))
        .then_some(text)
}

/// A signed-in user's request.
#[derive(Clone)]
pub struct UserSession {
    pub caller: Caller,
    pub token: String,
    pub session: Authenticated,
}

impl FromRequestParts<AppState> for UserSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<UserSession, ApiError> {
        let meta = RequestMeta::from_request_parts(parts, state).await?;
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthenticated("sign in first: send Authorization: Bearer <token>"))?;
        let session = state.engine.authenticate(token)?;
        let caller = Caller { actor: Actor::User(session.actor.clone()), ip: meta.ip, purpose: meta.purpose };
        Ok(UserSession { caller, token: token.to_string(), session })
    }
}

/// A device's request, authenticated with its own credential.
#[derive(Clone, Debug)]
pub struct DeviceSession {
    pub caller: Caller,
}

impl FromRequestParts<AppState> for DeviceSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<DeviceSession, ApiError> {
        let meta = RequestMeta::from_request_parts(parts, state).await?;
        let missing = || ApiError::unauthenticated("devices send Authorization: Basic base64(unique_id:secret)");
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(missing)?;
        let encoded = header.strip_prefix("Basic ").ok_or_else(missing)?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| missing())?;
        let text = String::from_utf8(decoded).map_err(|_| missing())?;
        let (unique_id, secret) = text.split_once(':').ok_or_else(missing)?;
        let actor = state.engine.authenticate_device(unique_id, secret, meta.ip.as_deref()).await?;
        Ok(DeviceSession { caller: Caller { actor: Actor::Device(actor), ip: meta.ip, purpose: meta.purpose } })
    }
}

/// Holds a secret: never printed, not even in debug output.
impl std::fmt::Debug for UserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserSession { <redacted> }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_decode_from_ascii_or_percent_encoded_utf8() {
        assert_eq!(decode_purpose(b"case 2026-0042").as_deref(), Some("case 2026-0042"));
        assert_eq!(decode_purpose("核查租户".as_bytes()).as_deref(), Some("核查租户"));
        assert_eq!(decode_purpose(b"%E6%A0%B8%E6%9F%A5").as_deref(), Some("核查"));
        assert_eq!(decode_purpose(b"  "), None);
        assert_eq!(decode_purpose(b"%FF"), None);
        assert_eq!(decode_purpose(b"%4"), Some("%4".into()));
        assert_eq!(decode_purpose("x".repeat(201).as_bytes()), None);
    }
}
