//! Cross-cutting layers: the error shape for failures outside handlers, and panics.

use std::any::Any;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ShapedError, code_for_status};

/// Gives the standard error shape to every 4xx/5xx that was not built by [`ApiError`]:
/// axum's own 404/405, body-limit rejections and the like.
pub(crate) async fn shape_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.extensions().get::<ShapedError>().is_some() {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Keep a short plain-text reason if the layer gave one; otherwise use the status text.
    let text = axum::body::to_bytes(body, 4096).await.ok().and_then(|b| String::from_utf8(b.to_vec()).ok());
    let message = match text.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() && !text.starts_with('{') && !text.starts_with('<') => text.to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut shaped = ApiError::new(status, code_for_status(status), message).into_response();
    // Keep headers that matter to the client (e.g. `Allow` on a 405).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            shaped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    shaped
}

/// Turns a panic in a handler into a logged 500 with the standard shape.
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; it has been logged").into_response()
}
