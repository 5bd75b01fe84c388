//! Jurisdictions over HTTP: boundary imports (the real district files, bad files with every
//! fault listed), GeoJSON out in either datum, and the point lookup.

use axum::http::{Method, StatusCode};
use fangkong_core::auth::Role;
use serde_json::{Value, json};

use crate::support::{CITY, FUTIAN, TestServer};

const DISTRICTS_WGS84: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../fangkong-sim/data/shenzhen-districts-wgs84.geojson"));

/// A server whose city administrator has imported the real district boundaries (replacing
/// the test rectangles of Futian and Luohu, adding the other six).
async fn with_districts() -> (TestServer, String) {
    let server = TestServer::start().await;
    server.add_user("city.admin", Role::Administrator, CITY).await;
    let token = server.token("city.admin").await;
    let reply = server
        .request(Method::POST, "/api/v1/jurisdictions/import?level=district&crs=wgs84")
        .token(&token)
        .bytes("application/geo+json", DISTRICTS_WGS84.to_vec())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({"level": "district", "added": 6, "updated": 2, "vertices": reply.json()["vertices"]})
    );
    (server, token)
}

async fn get(server: &TestServer, token: &str, path: &str) -> crate::support::Reply {
    server.request(Method::GET, path).token(token).send().await
}

#[tokio::test]
async fn a_point_resolves_to_its_chain_and_h3_cell_in_either_datum() {
    let (server, token) = with_districts().await;
    let reply = get(&server, &token, "/api/v1/jurisdictions/lookup?lat=22.5431&lon=114.0579").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["chain"]["city"]["code"], CITY);
    assert_eq!(body["chain"]["district"], json!({"code": FUTIAN, "name_zh": "福田区", "name_en": "Futian District"}));
    assert_eq!(body["chain"]["grid"], Value::Null, "the test tree has no shaped grids");
    // The reference H3 library (h3-py 4) gives 8941a10000fffff-style cells; check the form
    // and the resolution here, and the value against h3o in the geo crate's tests.
    let cell = body["h3"]["cell"].as_str().unwrap();
    assert_eq!((cell.len(), &cell[..2]), (15, "89"), "{cell}");
    assert_eq!(body["h3"]["resolution"], 9);

    // The same place given in GCJ-02 (as read off an AMap screen) finds the same district.
    let (lat, lon) = fangkong_geo::LatLon::new(22.5431, 114.0579).unwrap().to_gcj02();
    let reply = get(&server, &token, &format!("/api/v1/jurisdictions/lookup?lat={lat}&lon={lon}&crs=gcj02")).await;
    let body = reply.json();
    assert_eq!(body["chain"]["district"]["code"], FUTIAN, "{body}");
    assert!((body["lat"].as_f64().unwrap() - 22.5431).abs() < 1e-7, "answers in WGS84: {body}");
}

#[tokio::test]
async fn lookups_outside_the_city_or_with_bad_input_are_clear_errors() {
    let (server, token) = with_districts().await;
    // Hong Kong, across the Shenzhen River.
    let reply = get(&server, &token, "/api/v1/jurisdictions/lookup?lat=22.3193&lon=114.1694").await;
    let message = reply.assert_error(StatusCode::NOT_FOUND, "outside_city");
    assert!(message.contains("22.319300,114.169400"), "{message}");
    get(&server, &token, "/api/v1/jurisdictions/lookup?lat=95&lon=114")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_coordinates");
    get(&server, &token, "/api/v1/jurisdictions/lookup?lat=22.5")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    get(&server, &token, "/api/v1/jurisdictions/lookup?lat=22.5&lon=abc")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    get(&server, &token, "/api/v1/jurisdictions/lookup?lat=22.5&lon=114&crs=bd09")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_crs");
    server
        .request(Method::GET, "/api/v1/jurisdictions/lookup?lat=22.5&lon=114")
        .send()
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn boundaries_come_out_as_geojson_in_wgs84_or_gcj02() {
    let (server, token) = with_districts().await;
    let reply = get(&server, &token, &format!("/api/v1/jurisdictions/{FUTIAN}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/geo+json");
    let feature = reply.json();
    assert_eq!(feature["type"], "Feature");
    assert_eq!(feature["properties"]["kind"], "district");
    assert_eq!(feature["properties"]["name_zh"], "福田区");
    let area = feature["properties"]["area_km2"].as_f64().unwrap();
    assert!((area - 80.0).abs() < 0.5, "Futian is about 80 km²: {area}");
    assert_eq!(feature["geometry"]["type"], "Polygon");
    // The first vertex is the file's first vertex, exactly.
    let file: Value = serde_json::from_slice(DISTRICTS_WGS84).unwrap();
    let source = file["features"].as_array().unwrap().iter().find(|f| f["properties"]["adcode"] == FUTIAN).unwrap();
    assert_eq!(feature["geometry"]["coordinates"][0][0], source["geometry"]["coordinates"][0][0]);

    let gcj = get(&server, &token, &format!("/api/v1/jurisdictions/{FUTIAN}?crs=gcj02")).await.json();
    let [w, g] = [&feature, &gcj].map(|f| {
        f["geometry"]["coordinates"][0][0].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect::<Vec<_>>()
    });
    assert!(
        (g[0] - w[0] - 0.0051).abs() < 0.0005 && (g[1] - w[1] + 0.0027).abs() < 0.0005,
        "the GCJ-02 offset: {w:?} → {g:?}"
    );

    let all = get(&server, &token, "/api/v1/jurisdictions/features?kind=district").await.json();
    assert_eq!(all["type"], "FeatureCollection");
    assert_eq!(all["features"].as_array().unwrap().len(), 8);
    let within = get(&server, &token, &format!("/api/v1/jurisdictions/features?within={FUTIAN}")).await.json();
    let codes: Vec<&str> = within["features"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(codes, [FUTIAN, "440304001", "440304001001", "440304001001G01", "PS440304-01"]);
    assert_eq!(within["features"][1]["geometry"], Value::Null, "unshaped nodes have no geometry");

    get(&server, &token, "/api/v1/jurisdictions/999999")
        .await
        .assert_error(StatusCode::NOT_FOUND, "jurisdiction_not_found");
    get(&server, &token, "/api/v1/jurisdictions/features?kind=province")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_level");
    get(&server, &token, "/api/v1/jurisdictions/features?within=nowhere")
        .await
        .assert_error(StatusCode::NOT_FOUND, "jurisdiction_not_found");
}

#[tokio::test]
async fn a_bad_file_is_refused_whole_with_every_fault_named() {
    let (server, token) = with_districts().await;
    let before = get(&server, &token, "/api/v1/jurisdictions/features?kind=district").await.text;
    let square = |x: f64, y: f64| json!([[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]);
    let file = json!({"type": "FeatureCollection", "features": [
        // Fine on its own: a sub-district inside Futian.
        {"type": "Feature", "properties": {"code": "440304900", "name_zh": "好街道"},
         "geometry": {"type": "Polygon", "coordinates": [square(114.05, 22.53)]}},
        // Overlaps the first.
        {"type": "Feature", "properties": {"code": "440304901", "name_zh": "重叠街道"},
         "geometry": {"type": "Polygon", "coordinates": [square(114.055, 22.535)]}},
        // Wound clockwise.
        {"type": "Feature", "properties": {"code": "440304902", "name_zh": "反向街道"},
         "geometry": {"type": "Polygon", "coordinates": [[[114.03, 22.53], [114.03, 22.54], [114.04, 22.54], [114.04, 22.53], [114.03, 22.53]]]}},
        // Half in the sea south of Futian, half in Hong Kong: outside its named parent.
        {"type": "Feature", "properties": {"code": "440304903", "name_zh": "越界街道", "parent": FUTIAN},
         "geometry": {"type": "Polygon", "coordinates": [square(114.06, 22.49)]}},
    ]});
    let reply = server
        .request(Method::POST, "/api/v1/jurisdictions/import?level=subdistrict")
        .token(&token)
        .json(file)
        .send()
        .await;
    let message = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_boundaries");
    assert!(message.starts_with("the boundary file was refused (3 problems)"), "{message}");
    let details = reply.json()["error"]["details"].clone();
    let at: Vec<&str> = details.as_array().unwrap().iter().map(|d| d["at"].as_str().unwrap()).collect();
    assert_eq!(
        at,
        ["feature 1 (440304900 好街道)", "feature 3 (440304902 反向街道)", "feature 4 (440304903 越界街道)"],
        "{details}"
    );
    assert!(details[0]["reason"].as_str().unwrap().contains("overlaps feature 2 (440304901 重叠街道)"));
    assert!(details[1]["reason"].as_str().unwrap().contains("wound clockwise"));
    assert!(details[2]["reason"].as_str().unwrap().contains("outside its parent district 440304 福田区"));
    // Nothing of it was stored.
    assert_eq!(get(&server, &token, "/api/v1/jurisdictions/features?kind=district").await.text, before);
    get(&server, &token, "/api/v1/jurisdictions/440304900")
        .await
        .assert_error(StatusCode::NOT_FOUND, "jurisdiction_not_found");

    for (query, code) in [
        ("level=province", "invalid_level"),
        ("level=district&crs=bd09", "invalid_crs"),
        ("level=district&tolerance_m2=-1", "invalid_tolerance"),
    ] {
        let reply = server
            .request(Method::POST, &format!("/api/v1/jurisdictions/import?{query}"))
            .token(&token)
            .bytes("application/geo+json", DISTRICTS_WGS84.to_vec())
            .send()
            .await;
        reply.assert_error(StatusCode::BAD_REQUEST, code);
    }
    let reply = server
        .request(Method::POST, "/api/v1/jurisdictions/import?level=district")
        .token(&token)
        .bytes("application/geo+json", b"{\"type\":".to_vec())
        .send()
        .await;
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_boundaries");
}

/// Files bigger than the API's usual 2 MB body limit are accepted here (up to 64 MiB).
#[tokio::test]
async fn large_boundary_files_are_accepted() {
    let (server, token) = with_districts().await;
    let mut file: Value = serde_json::from_slice(DISTRICTS_WGS84).unwrap();
    file["features"][0]["properties"]["note"] = json!("x".repeat(3 * 1024 * 1024));
    let reply = server
        .request(Method::POST, "/api/v1/jurisdictions/import?level=district")
        .token(&token)
        .bytes("application/geo+json", serde_json::to_vec(&file).unwrap())
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:.300}", reply.text);
    assert_eq!(reply.json()["updated"], 8);
}
