//! The residents export over HTTP: the file holds exactly the residents the caller may
//! see, as they may see them, across many pages, in CSV and XLSX; another jurisdiction's
//! community is refused before a byte is sent; an export whose reader goes away stops.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fangkong_core::auth::Role;
use fangkong_engine::registry::{ExportFormat, ImportFormat, ImportKind};
use fangkong_engine::{Caller, EngineError};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::support::TestServer;

const COMMUNITY: &str = "440304001001";
const GRID: &str = "440304001001G01";
const OTHER_GRID: &str = "440303001001G01";
/// More than the export's page of 5,000.
const RESIDENTS: u32 = 5_150;

fn id_number(serial: u32) -> String {
    let first17 = format!("4403041990{:02}{:02}{:03}", 1 + serial % 12, 1 + serial / 12 % 28, serial / 336);
    format!("{first17}{}", fangkong_core::documents::check_character(first17.as_bytes()))
}

/// `RESIDENTS` residents in Futian's community and two in Luohu's.
async fn city() -> TestServer {
    let server = TestServer::start().await;
    server.property("B-FT", "U-FT", GRID, None).await;
    server.property("B-LH", "U-LH", OTHER_GRID, None).await;
    let mut file = String::from("code,name,id_number,phone,unit,grid\n");
    for n in 0..RESIDENTS + 2 {
        let (unit, grid) = if n < RESIDENTS { ("U-FT", GRID) } else { ("U-LH", OTHER_GRID) };
        file.push_str(&format!("R{n:05},居民{n},{},1380013{:04},{unit},{grid}\n", id_number(n), n % 10_000));
    }
    let source: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(file.into_bytes()));
    let system = Caller::system("test");
    let import = server.engine.import_registry(
        &system,
        ImportKind::Residents,
        ImportFormat::Csv,
        source,
        None,
        Box::new(|_| {}),
    );
    match import.await {
        Ok(report) => assert_eq!(report.rows, u64::from(RESIDENTS) + 2),
        Err(error) => panic!("{}", error.to_string().chars().take(500).collect::<String>()),
    }
    server.add_user("coordinator", Role::HousingCoordinator, COMMUNITY).await;
    server.add_user("officer", Role::CommunityOfficer, COMMUNITY).await;
    server
}

async fn export(server: &TestServer, token: &str, query: &str) -> (StatusCode, Vec<u8>) {
    let request = Request::get(format!("/api/v1/registry/export/residents{query}"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-purpose", "季度核查")
        .body(Body::empty())
        .unwrap();
    let response = server.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::Reader::from_reader(bytes).records().map(|r| r.unwrap().iter().map(String::from).collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_every_resident_the_caller_may_see_as_they_may_see_them() {
    let server = city().await;
    let coordinator = server.token("coordinator").await;
    let (status, bytes) = export(&server, &coordinator, "").await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let rows = csv_rows(&bytes);
    assert_eq!(rows.len(), RESIDENTS as usize, "every page, and none of Luohu's");
    let codes: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(codes.len(), rows.len(), "no resident twice");
    assert!(rows.iter().all(|r| r[11] == GRID && r[12] == COMMUNITY));
    // The coordinator sees numbers masked and phones whole; the officer both whole.
    let first = rows.iter().find(|r| r[0] == "R00007").unwrap();
    assert!(first[5].contains('*') && first[5] != id_number(7), "{first:?}");
    assert_eq!(first[6], "+8613800130007");
    let officer = server.token("officer").await;
    let (status, bytes) = export(&server, &officer, &format!("?community={COMMUNITY}")).await;
    assert_eq!(status, StatusCode::OK);
    let rows = csv_rows(&bytes);
    assert_eq!(rows.len(), RESIDENTS as usize);
    assert_eq!(rows.iter().find(|r| r[0] == "R00007").unwrap()[5], id_number(7));

    // The same as a workbook.
    let (status, bytes) = export(&server, &coordinator, "?format=xlsx").await;
    assert_eq!(status, StatusCode::OK);
    use calamine::{Reader, Xlsx};
    let mut book = Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    assert_eq!(sheet.rows().count(), RESIDENTS as usize + 1, "the header and every resident");
    assert_eq!(sheet.get((0, 5)).unwrap().to_string(), "id_number");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_communitys_export_is_refused_before_a_byte() {
    let server = city().await;
    let coordinator = server.token("coordinator").await;
    let (status, bytes) = export(&server, &coordinator, "?community=440303001001").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&bytes));
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "outside_jurisdiction");
    let (status, _) = export(&server, &coordinator, "?format=pdf").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_reader_goes_away_stops() {
    let server = city().await;
    let coordinator = server.engine.authenticate(&server.token("coordinator").await).unwrap();
    let caller = Caller {
        actor: fangkong_core::auth::Actor::User(coordinator.actor),
        ip: None,
        purpose: Some("季度核查".into()),
    };
    let (out, mut chunks) = tokio::sync::mpsc::channel(1);
    let engine = server.engine.clone();
    let export = tokio::spawn(async move { engine.export_residents(&caller, None, ExportFormat::Csv, out).await });
    let first = chunks.recv().await.unwrap();
    assert!(first.starts_with(b"code,name"), "the first page");
    drop(chunks);
    let stopped = export.await.unwrap();
    assert!(matches!(stopped, Err(EngineError::ReportAbandoned)), "{stopped:?}");
}
