//! The OpenAPI document and the offline API page.

use axum::http::StatusCode;

use crate::support::TestServer;

const OAS_3_1_SCHEMA: &str = include_str!("../fixtures/openapi-3.1-schema.json");

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let server = TestServer::start().await;
    let reply = server.get("/api/v1/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let document = reply.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1."), "{}", document["openapi"]);

    let schema: serde_json::Value = serde_json::from_str(OAS_3_1_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the OAS 3.1 schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(&document).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "invalid OpenAPI 3.1:\n{}", errors.join("\n"));

    // Schema objects in 3.1 are JSON Schema 2020-12: each component must be a valid one.
    for (name, component) in document["components"]["schemas"].as_object().unwrap() {
        assert!(jsonschema::meta::is_valid(component), "components.schemas.{name} is not valid JSON Schema");
    }
}

#[tokio::test]
async fn the_validation_catches_a_broken_document() {
    // Guard against a validator that accepts anything.
    let schema: serde_json::Value = serde_json::from_str(OAS_3_1_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let broken = serde_json::json!({"openapi": "3.1.0", "info": {"version": "1"}, "paths": {"nope": {}}});
    assert!(!validator.is_valid(&broken));
}

#[tokio::test]
async fn every_api_route_is_documented_with_its_error_shape() {
    let document = fangkong_server::openapi();
    let paths: Vec<&String> = document.paths.paths.keys().collect();
    for expected in
        ["/api/v1/system", "/api/v1/auth/login", "/api/v1/users/{username}", "/api/v1/audit", "/api/v1/codes/{kind}"]
    {
        assert!(paths.iter().any(|p| p.as_str() == expected), "{expected} missing from {paths:?}");
    }
    let json = serde_json::to_value(&document).unwrap();
    assert!(json["components"]["schemas"]["ErrorBody"].is_object(), "the error shape is a named schema");
    assert_eq!(json["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(json["paths"]["/api/v1/users"]["get"]["security"][0]["bearer"], serde_json::json!([]));
}

#[tokio::test]
async fn the_api_page_is_served_from_the_binary() {
    let server = TestServer::start().await;
    let page = server.get("/api/docs/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("swagger-ui"), "{}", &page.text[..page.text.len().min(300)]);
    // Every script and stylesheet the page loads is local, so it works on a closed network.
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js"] {
        assert!(page.text.contains(asset), "page refers to {asset}");
        assert!(!page.text.contains("http://") && !page.text.contains("https://unpkg"), "no remote assets");
        let reply = server.get(&format!("/api/docs/{asset}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{asset}");
        assert!(reply.text.len() > 100, "{asset} has content");
    }
    let initializer = server.get("/api/docs/swagger-initializer.js").await.text;
    assert!(initializer.contains("/api/v1/openapi.json"), "the page loads our document");
}
