//! Extractors that fail with [`ApiError`] instead of axum's plain-text rejections, so a bad
//! path, query or body gets the same error shape as everything else.

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

#[derive(FromRequest, Debug)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(FromRequestParts, Debug)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[derive(FromRequestParts, Debug)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::post;
    use http_body_util::BodyExt;
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;

    #[derive(Deserialize, Serialize)]
    struct Payload {
        count: u32,
    }

    async fn echo(Json(payload): Json<Payload>) -> Json<Payload> {
        Json(payload)
    }

    /// Sends `body` with `content_type` and checks the status and error code (or success).
    async fn check(content_type: Option<&str>, body: Vec<u8>, status: StatusCode, code: Option<&str>) {
        let app = Router::new()
            .route("/echo", post(echo))
            .layer(axum::extract::DefaultBodyLimit::max(1024))
            .layer(axum::middleware::from_fn(crate::middleware::shape_errors));
        let mut request = Request::post("/echo");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = app.oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
        assert_eq!(response.status(), status);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        match code {
            Some(code) => assert_eq!(json["error"]["code"], code, "{json}"),
            None => assert_eq!(json["count"], 3),
        }
    }

    #[tokio::test]
    async fn body_rejections_have_codes() {
        let json = Some("application/json");
        check(json, br#"{"count":3}"#.to_vec(), StatusCode::OK, None).await;
        check(None, br#"{"count":3}"#.to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type"))
            .await;
        check(json, b"{count:".to_vec(), StatusCode::BAD_REQUEST, Some("invalid_json")).await;
        check(json, br#"{"count":-1}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")).await;
        let big = format!(r#"{{"count":3,"pad":"{}"}}"#, "x".repeat(4096)).into_bytes();
        check(json, big, StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")).await;
    }
}
