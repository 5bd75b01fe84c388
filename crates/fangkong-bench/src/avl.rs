//! `fangkong bench avl`: the position pipeline under load, on SQLite (the embedded default),
//! with durable history.
//!
//! * **in-process** — two producer tasks (the machine's two cores) call
//!   `Engine::ingest_fix` for a fleet of trackers moving through Futian; the rate counts a
//!   fix only once the history writer has stored it (the run ends when the last one is
//!   durable). Each call's latency is receive → visible in the live index (the fix is
//!   visible when the call returns): p50 and p99.
//! * **HTTP** — the OsmAnd listener on a loopback port, fed by a load generator in the same
//!   process (keep-alive connections, one report per request, each awaited): the rate of
//!   answered reports, again counted as durable at the end.
//! * **history** — a table of `history_rows` fixes (every 10 s, trackers × days, written in
//!   arrival order) and the query for one tracker's day (`Store::track`): median and p99 over
//!   random tracker-days.
//!
//! Traccar is the reference its users compare against; its ingest path is not packaged for
//! this machine. With `--postgres`, the HTTP figure gets a peer instead: a **reference
//! receiver** such as a user would write (`avl_peer.rs`) — an axum handler that reads the
//! same OsmAnd query strings and stores each fix in PostgreSQL through a pool of
//! connections, fed by the same load generator, measured two ways: each fix inserted and
//! committed before the answer (`synchronous_commit=on`), and answered at once with a writer
//! task storing batches (our listener's way: durable when the batch commits). The faster is
//! the peer; both are printed.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fangkong_core::auth::DeviceKind;
use fangkong_core::avl::Fix;
use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_core::time::Timestamp;
use fangkong_engine::avl::{AvlConfig, Ingested};
use fangkong_engine::{Caller, Engine, EngineConfig, NewDevice, Store, StoredFix};
use fangkong_geo::LatLon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::{Better, Figure, median, percentile};

const BENCH: &str = "avl";
const T0: Timestamp = Timestamp::from_millis(1_764_288_000_000);

#[derive(Clone, Debug)]
pub struct AvlBenchOptions {
    pub sqlite_dir: Option<std::path::PathBuf>,
    /// PostgreSQL for the reference receiver (a schema of its own, dropped afterwards).
    pub postgres_url: Option<String>,
    pub rounds: usize,
    pub trackers: usize,
    /// Fixes per in-process round.
    pub fixes: usize,
    /// Reports per HTTP round, and connections.
    pub http_reports: usize,
    pub connections: usize,
    /// Rows of the history table for the query figure (100 M for the goal).
    pub history_rows: u64,
    pub history_queries: usize,
}

impl Default for AvlBenchOptions {
    fn default() -> AvlBenchOptions {
        AvlBenchOptions {
            sqlite_dir: None,
            postgres_url: None,
            rounds: 3,
            trackers: 10_000,
            fixes: 1_000_000,
            http_reports: 200_000,
            connections: 64,
            history_rows: 100_000_000,
            history_queries: 200,
        }
    }
}

impl AvlBenchOptions {
    /// Every code path, no meaningful figures.
    pub fn quick() -> AvlBenchOptions {
        AvlBenchOptions {
            rounds: 1,
            trackers: 50,
            fixes: 2_000,
            http_reports: 500,
            connections: 4,
            history_rows: 20_000,
            history_queries: 10,
            ..AvlBenchOptions::default()
        }
    }
}

fn temp_dir(options: &AvlBenchOptions) -> anyhow::Result<tempfile::TempDir> {
    match &options.sqlite_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("creating the benchmark directory")
}

/// An engine on a fresh SQLite file with a city whose only shaped district is a box
/// around Futian, and `trackers` trackers.
async fn engine_with_trackers(dir: &std::path::Path, trackers: usize) -> anyhow::Result<Arc<Engine>> {
    let url = format!("sqlite://{}", dir.join("avl.db").display());
    let config =
        EngineConfig { avl: AvlConfig::default(), ..EngineConfig::new(fangkong_engine::keys::KeyRing::generate()) };
    let engine = Engine::open(&url, config).await?;
    let system = Caller::system("bench");
    let city = Jurisdiction {
        code: "440300".into(),
        kind: JurisdictionKind::City,
        parent: None,
        name_zh: "深圳市".into(),
        name_en: None,
    };
    let district = Jurisdiction {
        code: "440304".into(),
        parent: Some("440300".into()),
        kind: JurisdictionKind::District,
        ..city.clone()
    };
    let square = fangkong_geo::Area::from_rings(vec![vec![vec![
        [113.98, 22.50],
        [114.11, 22.50],
        [114.11, 22.59],
        [113.98, 22.59],
        [113.98, 22.50],
    ]]])?;
    engine
        .add_jurisdictions(
            &system,
            vec![
                fangkong_engine::NodeWrite { node: city, shape: None },
                fangkong_engine::NodeWrite { node: district, shape: Some(square) },
            ],
        )
        .await?;
    // Registered concurrently, so the store's group commit takes them in few fsyncs.
    for chunk in (0..trackers).collect::<Vec<_>>().chunks(512) {
        let adds = chunk.iter().map(|n| {
            let engine = Arc::clone(&engine);
            let system = system.clone();
            async move {
                let new = NewDevice {
                    unique_id: tracker_id(*n),
                    kind: DeviceKind::Tracker,
                    unit: None,
                    jurisdiction: "440304".into(),
                    name: None,
                    location: None,
                };
                engine.add_device(&system, new).await
            }
        });
        for result in futures_util::future::join_all(adds).await {
            result?;
        }
    }
    Ok(engine)
}

fn tracker_id(n: usize) -> String {
    format!("86211802{n:07}")
}

/// Tracker `n`'s `step`-th fix: a slow walk on a lattice inside Futian, 10 s apart.
fn fix_of(n: usize, step: usize) -> Fix {
    let lat = 22.51 + (n % 100) as f64 * 0.0007 + step as f64 * 0.00001;
    let lon = 113.99 + (n / 100 % 100) as f64 * 0.0011 + (step % 7) as f64 * 0.00001;
    let mut fix = Fix::new(T0.plus_seconds(step as i64 * 10), LatLon::new(lat, lon).expect("a lattice point"));
    fix.speed_mps = Some(1.4);
    fix.accuracy_m = Some(6.0);
    fix.battery_pct = Some(80.0);
    fix
}

/// Waits until the writer has stored `count` fixes in total.
/// Waits until `stored()` (fixes stored so far, by whoever stores them) reaches `count`.
async fn until_stored(stored: &impl Fn() -> u64, count: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while stored() < count {
        anyhow::ensure!(Instant::now() < deadline, "the writer stalled at {} stored", stored());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// The HTTP rounds against an OsmAnd receiver at `address` (ours or the reference one):
/// each round's rate counted when `stored()` says every fix of it is stored, and every
/// round trip in µs.
pub(crate) async fn osmand_rounds(
    address: std::net::SocketAddr,
    options: &AvlBenchOptions,
    stored: impl Fn() -> u64,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (mut rates, mut latencies) = (Vec::new(), Vec::new());
    for round in 0..options.rounds {
        let before = stored();
        let queries = round_queries(options, round);
        let sent: usize = queries.iter().map(Vec::len).sum();
        let started = Instant::now();
        let clients: Vec<_> = queries.into_iter().map(|q| tokio::spawn(http_client(address, q))).collect();
        for client in clients {
            latencies.append(&mut client.await??);
        }
        until_stored(&stored, before + sent as u64).await?;
        rates.push(sent as f64 / started.elapsed().as_secs_f64());
    }
    Ok((rates, latencies))
}

pub async fn run(options: &AvlBenchOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    in_process(options, out).await?;
    over_http(options, out).await?;
    history(options, out).await?;
    Ok(())
}

async fn in_process(options: &AvlBenchOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = temp_dir(options)?;
    let engine = engine_with_trackers(dir.path(), options.trackers).await?;
    let steps = options.fixes.div_ceil(options.trackers);
    let (mut rates, mut ingest_rates, mut latencies) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        let stored_before = engine.avl_stats().stored;
        let started = Instant::now();
        let producers: Vec<_> = (0..2)
            .map(|half| {
                let engine = Arc::clone(&engine);
                let trackers = options.trackers;
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(steps * trackers / 2);
                    let ids: Vec<String> = (0..trackers).map(tracker_id).collect();
                    for step in round * steps..(round + 1) * steps {
                        for n in (half..trackers).step_by(2) {
                            let fix = fix_of(n, step);
                            let at = Instant::now();
                            let result = engine.ingest_fix(&ids[n], fix).await;
                            latencies.push(at.elapsed().as_secs_f64() * 1e6);
                            anyhow::ensure!(
                                matches!(result, Ok(Ingested::Accepted)),
                                "tracker {n} step {step}: {result:?}"
                            );
                        }
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let mut sent = 0;
        for producer in producers {
            let mut produced = producer.await??;
            sent += produced.len();
            latencies.append(&mut produced);
        }
        let ingested = started.elapsed().as_secs_f64();
        until_stored(&|| engine.avl_stats().stored, stored_before + sent as u64).await?;
        let durable = started.elapsed().as_secs_f64();
        ingest_rates.push(sent as f64 / ingested);
        rates.push(sent as f64 / durable);
        eprintln!(
            "bench avl: round {round}: {sent} fixes, visible in {ingested:.2} s, durable in {durable:.2} s (queue peak unknown)"
        );
    }
    Figure::new(BENCH, "in_process_durable", median(&rates), "positions/s", Better::Higher).print(out)?;
    Figure::new(BENCH, "in_process_visible", median(&ingest_rates), "positions/s", Better::Higher).print(out)?;
    Figure::new(BENCH, "receive_to_visible_p50", percentile(&latencies, 50.0), "us", Better::Lower).print(out)?;
    Figure::new(BENCH, "receive_to_visible_p99", percentile(&latencies, 99.0), "us", Better::Lower).print(out)?;
    engine.shutdown().await;
    Ok(())
}

/// Sends `reports` OsmAnd reports over one keep-alive connection; returns each round trip
/// in microseconds.
async fn http_client(address: std::net::SocketAddr, reports: Vec<String>) -> anyhow::Result<Vec<f64>> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let mut buffer = vec![0u8; 4096];
    let mut latencies = Vec::with_capacity(reports.len());
    for query in reports {
        let request = format!("GET /?{query} HTTP/1.1\r\nhost: bench\r\n\r\n");
        let at = Instant::now();
        stream.write_all(request.as_bytes()).await?;
        // Answers are empty-bodied: read until the end of the headers.
        let mut filled = 0;
        loop {
            let n = stream.read(&mut buffer[filled..]).await?;
            anyhow::ensure!(n > 0, "the server closed the connection");
            filled += n;
            if buffer[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        latencies.push(at.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(buffer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buffer[..filled]));
    }
    Ok(latencies)
}

async fn over_http(options: &AvlBenchOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = temp_dir(options)?;
    let engine = engine_with_trackers(dir.path(), options.trackers).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = fangkong_server::osmand::router(Arc::clone(&engine));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (rates, latencies) = osmand_rounds(address, options, || engine.avl_stats().stored).await?;
    server.abort();
    engine.shutdown().await;
    let (rate, p99) = (median(&rates), percentile(&latencies, 99.0));
    let mut rate_figure = Figure::new(BENCH, "http_osmand_durable", rate, "positions/s", Better::Higher);
    let mut p99_figure = Figure::new(BENCH, "http_osmand_p99", p99, "us", Better::Lower);
    if let Some(url) = &options.postgres_url {
        let mut peers = Vec::new();
        for way in [crate::avl_peer::Way::CommitEach, crate::avl_peer::Way::Batched] {
            let (peer_rate, peer_p99) = crate::avl_peer::run(url, options, way).await?;
            eprintln!(
                "bench avl: reference receiver, {}: {peer_rate:.0} positions/s, p99 {peer_p99:.0} µs",
                way.describe()
            );
            Figure::new(BENCH, format!("http_osmand_durable_vs_{}", way.name()), rate, "positions/s", Better::Higher)
                .with_peer(way.describe(), peer_rate)
                .print(out)?;
            Figure::new(BENCH, format!("http_osmand_p99_vs_{}", way.name()), p99, "us", Better::Lower)
                .with_peer(way.describe(), peer_p99)
                .print(out)?;
            peers.push((way, peer_rate, peer_p99));
        }
        let (way, peer_rate, peer_p99) =
            peers.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).expect("two ways measured");
        rate_figure = rate_figure.with_peer(format!("{} (the faster way)", way.describe()), peer_rate);
        p99_figure = p99_figure.with_peer(format!("{} (the faster way)", way.describe()), peer_p99);
    }
    rate_figure.print(out)?;
    p99_figure.print(out)?;
    Ok(())
}

/// The OsmAnd query strings of one HTTP round, one list per connection: each connection
/// carries a share of the trackers, each tracker's fixes in order.
fn round_queries(options: &AvlBenchOptions, round: usize) -> Vec<Vec<String>> {
    let steps = options.http_reports.div_ceil(options.trackers);
    let mut queries: Vec<Vec<String>> = vec![Vec::new(); options.connections];
    for step in round * steps..(round + 1) * steps {
        for n in 0..options.trackers {
            let fix = fix_of(n, step);
            queries[n % options.connections].push(format!(
                "id={}&lat={:.6}&lon={:.6}&timestamp={}&speed=2.7&accuracy=6&batt=80",
                tracker_id(n),
                fix.point.lat(),
                fix.point.lon(),
                fix.fixed_at.as_millis() / 1000
            ));
        }
    }
    queries
}

async fn history(options: &AvlBenchOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = temp_dir(options)?;
    let url = format!("sqlite://{}", dir.path().join("history.db").display());
    let (store, _) = Store::open_and_migrate(&url).await?;
    // Fixes every 10 s: 8,640 a tracker-day; 30 days; as many trackers as the rows need.
    let per_day: u64 = 8_640;
    let days: u64 = 30.min(options.history_rows.div_ceil(per_day).max(1));
    let trackers = options.history_rows.div_ceil(per_day * days).max(1);
    let total = trackers * per_day * days;
    eprintln!("bench avl: writing {total} history rows ({trackers} trackers × {days} days, a fix every 10 s)");
    let started = Instant::now();
    let mut batch = Vec::with_capacity(50_000);
    let mut written = 0u64;
    for step in 0..per_day * days {
        for tracker in 0..trackers {
            let mut fix = fix_of(tracker as usize, step as usize % 5_000);
            fix.fixed_at = T0.plus_seconds(step as i64 * 10);
            batch.push(StoredFix {
                device_id: tracker as i64 + 1,
                received_at: fix.fixed_at,
                h3: Some(0x0894_11ca_a05b_ffff),
                fix,
            });
            if batch.len() == batch.capacity() {
                written += store.write_positions(std::mem::take(&mut batch), Vec::new(), Default::default()).await?;
                batch.reserve(50_000);
                if written % 10_000_000 < 50_000 {
                    eprintln!("bench avl: {written} rows in {:.0} s", started.elapsed().as_secs_f64());
                }
            }
        }
    }
    written += store.write_positions(batch, Vec::new(), Default::default()).await?;
    let load_rate = written as f64 / started.elapsed().as_secs_f64();
    let size = std::fs::metadata(dir.path().join("history.db")).map(|m| m.len()).unwrap_or(0);
    eprintln!("bench avl: {written} rows stored ({:.1} GB file)", size as f64 / 1e9);

    let mut times_ms = Vec::new();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..options.history_queries {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let tracker = (state >> 33) % trackers + 1;
        let day = (state >> 13) % days;
        let from = T0.plus_seconds(day as i64 * 86_400);
        let at = Instant::now();
        let track = store.track(tracker as i64, from, from.plus_seconds(86_400), 10_000).await?;
        times_ms.push(at.elapsed().as_secs_f64() * 1_000.0);
        anyhow::ensure!(track.len() as u64 == per_day.min(written), "a tracker-day has {} fixes", track.len());
    }
    Figure::new(BENCH, "history_rows", written as f64, "rows", Better::Higher).print(out)?;
    Figure::new(BENCH, "history_bulk_write", load_rate, "rows/s", Better::Higher).print(out)?;
    Figure::new(BENCH, "unit_day_query_median", median(&times_ms), "ms", Better::Lower).print(out)?;
    Figure::new(BENCH, "unit_day_query_p99", percentile(&times_ms, 99.0), "ms", Better::Lower).print(out)?;
    store.close().await;
    Ok(())
}
