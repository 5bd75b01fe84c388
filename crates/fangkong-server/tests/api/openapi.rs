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

/// The console's TypeScript types for the REST API and the live stream are generated from
/// `web/openapi.json` (`npm run types` writes `web/src/api.gen.ts`, which CI checks is
/// current). This keeps that file the document the server serves.
#[test]
fn the_consoles_copy_of_the_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json");
    let current = serde_json::to_string_pretty(&fangkong_server::openapi()).unwrap() + "\n";
    if std::env::var("FANGKONG_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &current).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "web/openapi.json is not the served document: run\n  FANGKONG_UPDATE_OPENAPI=1 cargo test -p fangkong-server \
         --test api openapi\nthen `npm run types` in web/, and commit both files"
    );
    // The stream's messages are part of it.
    let document: serde_json::Value = serde_json::from_str(&current).unwrap();
    let kinds: Vec<&str> = document["components"]["schemas"]["StreamMessage"]["oneOf"]
        .as_array()
        .expect("StreamMessage is a oneOf")
        .iter()
        .filter_map(|variant| variant["properties"]["type"]["enum"][0].as_str())
        .collect();
    assert_eq!(kinds, ["snapshot", "resumed", "incident", "unit", "unit_overdue", "panic", "positions"]);
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
    // Operation ids are unique (OpenAPI requires it; generated clients name calls by them).
    let mut ids: Vec<&str> = json["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "an operationId is used twice");
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

/// The schema names the server's source declares: for each `ToSchema` type, its
/// `#[schema(as = …)]` name or else its own, with where it is declared.
fn declared_schema_names() -> Vec<(String, String)> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("error.rs")];
    for entry in std::fs::read_dir(src.join("api")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !(line.trim_start().starts_with("#[derive(") && line.contains("ToSchema")) {
                continue;
            }
            let mut renamed = None;
            for next in &lines[i + 1..(i + 12).min(lines.len())] {
                let next = next.trim();
                if let Some(rest) = next.strip_prefix("#[schema(as = ") {
                    renamed = Some(rest.trim_end_matches(")]").rsplit("::").next().unwrap().to_string());
                }
                let declared = next.strip_prefix("pub struct ").or_else(|| next.strip_prefix("pub enum "));
                if let Some(declared) = declared {
                    let own: String = declared.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    let at = format!("{}:{}", file.file_name().unwrap().to_string_lossy(), i + 1);
                    names.push((renamed.unwrap_or(own), at));
                    break;
                }
            }
        }
    }
    names
}

#[test]
fn no_two_types_share_a_schema_name() {
    let names = declared_schema_names();
    assert!(names.len() > 50, "the scan found the wire types: {names:?}");
    let mut seen = std::collections::HashMap::new();
    for (name, at) in &names {
        if let Some(first) = seen.insert(name.clone(), at.clone()) {
            panic!(
                "schema {name} is declared twice ({first} and {at}); the document keeps only one: rename one with #[schema(as = …)]"
            );
        }
    }
}

/// A component schema of the document, by name.
fn component(document: &serde_json::Value, reference: &serde_json::Value) -> serde_json::Value {
    let name = reference["$ref"].as_str().unwrap_or_else(|| panic!("not a $ref: {reference}"));
    let name = name.strip_prefix("#/components/schemas/").unwrap();
    document["components"]["schemas"][name].clone()
}

#[tokio::test]
async fn documented_schemas_are_the_types_the_handlers_take_and_give() {
    let document = serde_json::to_value(fangkong_server::openapi()).unwrap();
    // POST /units takes a patrol unit, not a dwelling.
    let request = &document["paths"]["/api/v1/units"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let unit = component(&document, request);
    let properties = unit["properties"].as_object().unwrap();
    for field in ["code", "call_sign", "station", "category", "mode"] {
        assert!(properties.contains_key(field), "POST /units documents {field}: {unit}");
    }
    assert!(!properties.contains_key("area_m2"), "not the housing unit: {unit}");
    // A property's dwellings are dwellings.
    let card = &document["paths"]["/api/v1/registry/buildings/{code}"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    let card = component(&document, card);
    let building = component(&document, &card["properties"]["building"]);
    let units = building["properties"]["units"]["items"].clone();
    assert!(component(&document, &units)["properties"]["area_m2"].is_object(), "{building}");

    // An incident's jurisdiction: what a real incident serialises to, with the types documented.
    let server = TestServer::start().await;
    let token = server.signed_in("disp", fangkong_core::auth::Role::Dispatcher, crate::support::CITY).await;
    let created = server
        .request(axum::http::Method::POST, "/api/v1/incidents")
        .token(&token)
        .json(serde_json::json!({"source": "110", "type_code": "010301", "lat": 22.55, "lon": 114.05}))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let incident = created.json();
    let id = incident["id"].as_i64().unwrap();
    let read = server.get_as(&token, &format!("/api/v1/incidents/{id}")).await;
    let schema = &document["paths"]["/api/v1/incidents/{id}"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    let incident_schema = component(&document, schema);
    let jurisdiction = component(&document, &incident_schema["properties"]["jurisdiction"]);
    let documented = jurisdiction["properties"].as_object().unwrap();
    let sent = read.json()["jurisdiction"].as_object().unwrap().clone();
    let sorted = |keys: serde_json::map::Keys<'_>| {
        let mut keys: Vec<String> = keys.cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        sorted(documented.keys()),
        sorted(sent.keys()),
        "the documented fields are the fields sent: {jurisdiction}"
    );
    for (field, value) in &sent {
        let types = documented[field]["type"].to_string();
        assert!(types.contains("string"), "{field} is documented as {types}");
        assert!(value.is_string() || value.is_null(), "{field} is sent as {value}");
    }
    assert_eq!(sent["district"], crate::support::FUTIAN);
}
