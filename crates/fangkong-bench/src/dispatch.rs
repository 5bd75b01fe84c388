//! `fangkong bench dispatch`: the 110 centre under load.
//!
//! * **recommendation** — `units` live units (50,000 by default: the plan's force) placed
//!   over Shenzhen's box, registered, tracked and made available through the engine's own
//!   commands; then the best five units for random points, straight from the live index
//!   (`Engine::recommend_at`, which ranks by estimated arrival with modes, suitability and
//!   beats): p50/p99 per query. Beside it, the nearest-available query as a user of each
//!   peer would send it over loopback: Redis `GEOSEARCH … BYRADIUS r km ASC COUNT 5` on a
//!   key of the available units (2 km, widened to 10 and 100 km while fewer than five
//!   come back: a search over all 50,000 is what a single 100 km radius costs), and PostGIS `ORDER BY geom <-> point LIMIT 5` on an indexed table
//!   (GiST). The peers answer a simpler question (nearest by distance, no modes, no
//!   suitability, no beats); the ratio is still ours ÷ theirs for the answer a dispatcher
//!   gets.
//! * **intake** — durable incident creation through the engine (each call returns once its
//!   row and timeline entry are committed), from 256 concurrent callers, on SQLite and, with
//!   `--postgres`, PostgreSQL.
//! * **HTTP intake** — `POST /api/v1/incidents` over loopback keep-alive connections from a
//!   load generator in the same process, with the full stack (session, checks, store):
//!   incidents/s and p99.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use fangkong_core::auth::account::NewUser;
use fangkong_core::auth::{DeviceKind, Role};
use fangkong_core::avl::Fix;
use fangkong_core::dispatch::UnitStatus;
use fangkong_core::forces::{ForceCategory, PatrolMode, Unit};
use fangkong_core::jurisdiction::{Jurisdiction, JurisdictionKind};
use fangkong_engine::{Caller, Engine, EngineConfig, NewDevice, NewIncident, NodeWrite};
use fangkong_geo::LatLon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::{Better, Figure, median, percentile};
use crate::store::BenchSchema;

const BENCH: &str = "dispatch";
/// Shenzhen's box (WGS84).
const WEST: f64 = 113.76;
const EAST: f64 = 114.62;
const SOUTH: f64 = 22.45;
const NORTH: f64 = 22.86;
const STATION: &str = "PS-BENCH";
const PASSWORD: &str = "a long bench passphrase";

#[derive(Clone, Debug)]
pub struct DispatchBenchOptions {
    pub sqlite_dir: Option<std::path::PathBuf>,
    pub postgres_url: Option<String>,
    pub redis_address: Option<String>,
    pub rounds: usize,
    pub units: usize,
    pub queries: usize,
    /// Incidents per intake round, and concurrent callers.
    pub incidents: usize,
    pub callers: usize,
    /// Incidents per HTTP round, and connections.
    pub http_incidents: usize,
    pub connections: usize,
}

impl Default for DispatchBenchOptions {
    fn default() -> DispatchBenchOptions {
        DispatchBenchOptions {
            sqlite_dir: None,
            postgres_url: None,
            redis_address: Some("127.0.0.1:6379".into()),
            rounds: 3,
            units: 50_000,
            queries: 20_000,
            incidents: 20_000,
            callers: 256,
            http_incidents: 10_000,
            connections: 32,
        }
    }
}

impl DispatchBenchOptions {
    /// Every code path, no meaningful figures.
    pub fn quick() -> DispatchBenchOptions {
        DispatchBenchOptions {
            rounds: 1,
            units: 300,
            queries: 200,
            incidents: 200,
            callers: 8,
            http_incidents: 100,
            connections: 4,
            ..DispatchBenchOptions::default()
        }
    }
}

/// A deterministic stream of numbers in [0, 1).
struct Random(u64);

impl Random {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn point(&mut self) -> LatLon {
        LatLon::new(SOUTH + self.next() * (NORTH - SOUTH), WEST + self.next() * (EAST - WEST)).expect("in the box")
    }
}

/// Unit `n`: mostly cars, some walkers and cyclists; a few traffic and fire units.
fn unit(n: usize) -> Unit {
    let mode = match n % 10 {
        0 | 1 => PatrolMode::Foot,
        2 => PatrolMode::Bicycle,
        _ => PatrolMode::Vehicle,
    };
    let capabilities = match n % 200 {
        0 => vec!["fire".to_string()],
        1..=10 => vec!["traffic".to_string()],
        _ => Vec::new(),
    };
    Unit {
        code: format!("U{n:06}"),
        call_sign: format!("巡{n}"),
        station: STATION.into(),
        category: if n.is_multiple_of(3) { ForceCategory::Volunteer } else { ForceCategory::Police },
        mode,
        equipment: Vec::new(),
        beat: None,
        capabilities,
    }
}

fn unit_point(n: usize) -> LatLon {
    Random(n as u64 * 7_919 + 1).point()
}

fn temp_dir(options: &DispatchBenchOptions) -> anyhow::Result<tempfile::TempDir> {
    match &options.sqlite_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("creating the benchmark directory")
}

/// An engine with the city (one district over the whole box, one station) and a dispatcher.
async fn engine_on(url: &str) -> anyhow::Result<Arc<Engine>> {
    let config = EngineConfig::new(fangkong_engine::keys::KeyRing::generate());
    let engine = Engine::open(url, config).await?;
    let system = Caller::system("bench");
    let node = |code: &str, kind, parent: Option<&str>| Jurisdiction {
        code: code.into(),
        kind,
        parent: parent.map(Into::into),
        name_zh: code.into(),
        name_en: None,
    };
    let shape = fangkong_geo::Area::from_rings(vec![vec![vec![
        [WEST, SOUTH],
        [EAST, SOUTH],
        [EAST, NORTH],
        [WEST, NORTH],
        [WEST, SOUTH],
    ]]])?;
    engine
        .add_jurisdictions(
            &system,
            vec![
                NodeWrite { node: node("440300", JurisdictionKind::City, None), shape: None },
                NodeWrite { node: node("440304", JurisdictionKind::District, Some("440300")), shape: Some(shape) },
                NodeWrite { node: node(STATION, JurisdictionKind::PoliceStation, Some("440304")), shape: None },
            ],
        )
        .await?;
    let dispatcher = NewUser {
        username: "dispatcher".into(),
        display_name: "接警员".into(),
        role: Role::Dispatcher,
        jurisdiction: "440300".into(),
    };
    engine.create_user(&system, dispatcher, PASSWORD).await?;
    Ok(engine)
}

/// Registers, tracks and frees `count` units through the engine's commands.
async fn live_units(engine: &Arc<Engine>, count: usize) -> anyhow::Result<()> {
    let system = Caller::system("bench");
    let started = Instant::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(10_000) {
        engine.save_units(&system, chunk.iter().map(|&n| unit(n)).collect()).await?;
    }
    for chunk in (0..count).collect::<Vec<_>>().chunks(256) {
        let jobs = chunk.iter().map(|&n| {
            let (engine, system) = (Arc::clone(engine), system.clone());
            async move {
                let code = unit(n).code;
                let device = NewDevice {
                    unique_id: format!("T{n:06}"),
                    kind: DeviceKind::Tracker,
                    unit: Some(code.clone()),
                    jurisdiction: "440304".into(),
                    name: None,
                    location: None,
                };
                engine.add_device(&system, device).await?;
                engine.ingest_fix(&format!("T{n:06}"), Fix::new(engine.now(), unit_point(n))).await?;
                engine.set_unit_status(&system, &code, UnitStatus::Available).await?;
                anyhow::Ok(())
            }
        });
        for result in futures_util::future::join_all(jobs).await {
            result?;
        }
    }
    eprintln!("bench dispatch: {count} live units ready in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

pub async fn run(options: &DispatchBenchOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = temp_dir(options)?;
    let url = format!("sqlite://{}", dir.path().join("dispatch.db").display());
    let engine = engine_on(&url).await?;
    live_units(&engine, options.units).await?;
    recommendation(&engine, options, out).await?;
    let sqlite = intake(&engine, options).await?;
    let mut figure = Figure::new(BENCH, "intake_durable_sqlite", sqlite, "incidents/s", Better::Higher);
    match &options.postgres_url {
        // The same engine on PostgreSQL, each on a fresh schema: with the store's default
        // pool (16 connections for the 256 callers) and with as many connections as an
        // operator would give a busy centre (64: PostgreSQL flushes the WAL once for every
        // commit written before the flush, so more connections committing at once share
        // their fsyncs). The better one is the peer; both are printed.
        Some(admin_url) => {
            let mut rates = Vec::new();
            for pool in [16, 64] {
                let schema = BenchSchema::create(admin_url).await?;
                let result = async {
                    let engine = engine_on(&format!("{}&pool_max_size={pool}", schema.url)).await?;
                    let rate = intake(&engine, options).await?;
                    engine.shutdown().await;
                    anyhow::Ok(rate)
                }
                .await;
                schema.drop().await;
                let rate = result?;
                eprintln!("bench dispatch: PostgreSQL intake with {pool} pooled connections: {rate:.0}/s");
                Figure::new(
                    BENCH,
                    format!("intake_durable_sqlite_vs_postgres_pool_{pool}"),
                    sqlite,
                    "incidents/s",
                    Better::Higher,
                )
                .with_peer(format!("postgres: the same engine, {pool} pooled connections, synchronous_commit=on"), rate)
                .print(out)?;
                rates.push((pool, rate));
            }
            let (pool, best) = rates.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).expect("two pools measured");
            figure = figure.with_peer(
                format!("postgres: the same engine, {pool} pooled connections (the faster of 16 and 64), synchronous_commit=on"),
                best,
            );
        }
        None => eprintln!("bench dispatch: no PostgreSQL URL (--postgres); intake measured on SQLite only"),
    }
    figure.print(out)?;
    over_http(&engine, options, out).await?;
    engine.shutdown().await;
    Ok(())
}

/// The query points and incident types every contender answers.
fn queries(count: usize) -> Vec<(LatLon, &'static str)> {
    let mut random = Random(0x5EED);
    (0..count)
        .map(|i| {
            let type_code = match i % 10 {
                0..=2 => "030101",             // traffic accident: prefers traffic units
                3 if i % 100 == 3 => "040100", // building fire: prefers fire units
                _ => "010301",
            };
            (random.point(), type_code)
        })
        .collect()
}

async fn recommendation(
    engine: &Arc<Engine>,
    options: &DispatchBenchOptions,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let queries = queries(options.queries);
    let mut latencies = Vec::with_capacity(queries.len() * options.rounds);
    let mut found = 0usize;
    for _ in 0..options.rounds {
        for (point, type_code) in &queries {
            let at = Instant::now();
            let ranked = engine.recommend_at(*point, type_code, 5, &[]);
            latencies.push(at.elapsed().as_secs_f64() * 1e6);
            found += ranked.len();
        }
    }
    anyhow::ensure!(found == latencies.len() * 5.min(options.units), "every query found its units ({found})");
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    // Redis both ways a user might set it up: the first radius 0.5 km (about ten units
    // inside in the city's centre) or 2 km (about 155); widened while fewer than five come
    // back. The faster is the peer.
    let mut ladders = Vec::new();
    if let Some(address) = &options.redis_address {
        for ladder in [&["0.5", "2", "10", "100"][..], &["2", "10", "100"][..]] {
            match crate::report::on_own_thread(redis_peer(address, options, &queries, ladder)) {
                Ok(figures) => ladders.push((ladder.join("/"), figures)),
                Err(error) => eprintln!("bench dispatch: Redis at {address} not measured: {error:#}"),
            }
        }
    }
    for (ladder, figures) in &ladders {
        for (metric, value, pick) in [("recommend_p50", p50, 0), ("recommend_p99", p99, 1)] {
            Figure::new(
                BENCH,
                format!("{metric}_vs_redis_from_{}km", ladder.split('/').next().unwrap_or("")),
                value,
                "us",
                Better::Lower,
            )
            .with_peer(format!("redis GEOSEARCH BYRADIUS {ladder} km ASC COUNT 5 WITHDIST (loopback)"), figures[pick])
            .print(out)?;
        }
    }
    let redis = ladders.iter().min_by(|a, b| a.1[0].total_cmp(&b.1[0])).cloned();
    let postgis = match &options.postgres_url {
        Some(url) => Some(crate::report::on_own_thread(postgis_peer(url, options, &queries))?),
        None => None,
    };
    for (metric, value, pick) in [("recommend_p50", p50, 0), ("recommend_p99", p99, 1)] {
        let mut figure = Figure::new(BENCH, metric, value, "us", Better::Lower);
        if let Some((ladder, redis)) = &redis {
            figure = figure.with_peer(
                format!("redis GEOSEARCH BYRADIUS {ladder} km ASC COUNT 5 (loopback, nearest by distance; the faster ladder)"),
                redis[pick],
            );
        }
        figure.print(out)?;
        if let Some(postgis) = &postgis {
            let figure = Figure::new(BENCH, format!("{metric}_vs_postgis"), value, "us", Better::Lower)
                .with_peer("postgis KNN <-> LIMIT 5 with GiST (loopback, nearest by distance)", postgis[pick]);
            figure.print(out)?;
        }
    }
    Ok(())
}

// ---- Redis, spoken directly (RESP) -------------------------------------------------------

/// A minimal Redis client, blocking, as `redis-benchmark` or a plain C client talks to
/// Redis: one buffered write and a buffered read per command on a TCP connection with
/// Nagle off (on its own thread: see `report::on_own_thread`). An async client on the
/// shared runtime measured GEOSEARCH at twice what `redis-benchmark` gets by hand.
struct Redis {
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::io::BufWriter<std::net::TcpStream>,
}

/// A reply; only arrays are looked into (to count the units found).
#[derive(Debug)]
enum Reply {
    Scalar,
    Array(Vec<Reply>),
}

impl Redis {
    fn connect(address: &str) -> anyhow::Result<Redis> {
        let stream = std::net::TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        Ok(Redis { reader: std::io::BufReader::new(stream.try_clone()?), writer: std::io::BufWriter::new(stream) })
    }

    fn call(&mut self, args: &[&str]) -> anyhow::Result<Reply> {
        use std::io::Write as _;
        write!(self.writer, "*{}\r\n", args.len())?;
        for arg in args {
            write!(self.writer, "${}\r\n{arg}\r\n", arg.len())?;
        }
        self.writer.flush()?;
        self.reply()
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut self.reader, &mut line)?;
        anyhow::ensure!(line.ends_with("\r\n"), "Redis closed the connection");
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn reply(&mut self) -> anyhow::Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(1);
        Ok(match kind {
            "+" | ":" => Reply::Scalar,
            "-" => anyhow::bail!("Redis: {rest}"),
            "$" => {
                let length: i64 = rest.parse()?;
                if length >= 0 {
                    let mut data = vec![0; length as usize + 2];
                    std::io::Read::read_exact(&mut self.reader, &mut data)?;
                }
                Reply::Scalar
            }
            "*" => {
                let count: i64 = rest.parse()?;
                let mut items = Vec::with_capacity(count.max(0) as usize);
                for _ in 0..count.max(0) {
                    items.push(self.reply()?);
                }
                Reply::Array(items)
            }
            other => anyhow::bail!("Redis: unexpected reply {other:?}"),
        })
    }
}

/// p50 and p99 of GEOSEARCH over the same points, in µs.
async fn redis_peer(
    address: &str,
    options: &DispatchBenchOptions,
    queries: &[(LatLon, &str)],
    ladder: &[&str],
) -> anyhow::Result<[f64; 2]> {
    let mut redis = Redis::connect(address)?;
    let key = format!("fangkong:bench:units:{}", std::process::id());
    redis.call(&["DEL", &key])?;
    for chunk in (0..options.units).collect::<Vec<_>>().chunks(1_000) {
        let mut args = vec!["GEOADD".to_string(), key.clone()];
        for &n in chunk {
            let point = unit_point(n);
            args.extend([format!("{:.6}", point.lon()), format!("{:.6}", point.lat()), unit(n).code]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        redis.call(&args)?;
    }
    let mut latencies = Vec::new();
    let mut found = 0;
    for _ in 0..options.rounds {
        for (point, _) in queries {
            let (lon, lat) = (format!("{:.6}", point.lon()), format!("{:.6}", point.lat()));
            // As a user would: a small radius first, wider only when it holds too few.
            let at = Instant::now();
            let mut count = 0;
            for &radius in ladder {
                let reply = redis.call(&[
                    "GEOSEARCH",
                    &key,
                    "FROMLONLAT",
                    &lon,
                    &lat,
                    "BYRADIUS",
                    radius,
                    "km",
                    "ASC",
                    "COUNT",
                    "5",
                    "WITHDIST",
                ])?;
                count = if let Reply::Array(items) = reply { items.len() } else { 0 };
                if count == 5 {
                    break;
                }
            }
            latencies.push(at.elapsed().as_secs_f64() * 1e6);
            found += count;
        }
    }
    redis.call(&["DEL", &key])?;
    anyhow::ensure!(found == latencies.len() * 5.min(options.units), "Redis found {found}");
    Ok([percentile(&latencies, 50.0), percentile(&latencies, 99.0)])
}

/// p50 and p99 of a KNN query over the same points, in µs.
async fn postgis_peer(
    url: &str,
    options: &DispatchBenchOptions,
    queries: &[(LatLon, &str)],
) -> anyhow::Result<[f64; 2]> {
    let schema = BenchSchema::create(url).await?;
    let result = async {
        let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        // PostGIS may already be installed in `public` (by `bench geo`, or an operator).
        client.batch_execute(&format!("SET search_path = {}, public", schema.name)).await?;
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS postgis")
            .await
            .context("PostGIS is not available in this PostgreSQL (Debian: apt-get install postgresql-15-postgis-3)")?;
        client
            .batch_execute(
                "CREATE TABLE units (code text PRIMARY KEY, status text NOT NULL, geom geometry(Point, 4326) NOT NULL)",
            )
            .await?;
        let codes: Vec<String> = (0..options.units).map(|n| unit(n).code).collect();
        let lons: Vec<f64> = (0..options.units).map(|n| unit_point(n).lon()).collect();
        let lats: Vec<f64> = (0..options.units).map(|n| unit_point(n).lat()).collect();
        client
            .execute(
                "INSERT INTO units SELECT c, 'available', ST_SetSRID(ST_MakePoint(x, y), 4326)
                 FROM unnest($1::text[], $2::float8[], $3::float8[]) AS t(c, x, y)",
                &[&codes, &lons, &lats],
            )
            .await?;
        client.batch_execute("CREATE INDEX units_geom ON units USING gist (geom); ANALYZE units").await?;
        let statement = client
            .prepare(
                "SELECT code, ST_DistanceSphere(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326)) FROM units
                 WHERE status = 'available' ORDER BY geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326) LIMIT 5",
            )
            .await?;
        let mut latencies = Vec::new();
        let mut found = 0;
        for _ in 0..options.rounds {
            for (point, _) in queries {
                let at = Instant::now();
                let rows = client.query(&statement, &[&point.lon(), &point.lat()]).await?;
                latencies.push(at.elapsed().as_secs_f64() * 1e6);
                found += rows.len();
            }
        }
        anyhow::ensure!(found == latencies.len() * 5.min(options.units), "PostGIS found {found}");
        anyhow::Ok([percentile(&latencies, 50.0), percentile(&latencies, 99.0)])
    }
    .await;
    schema.drop().await;
    result
}

// ---- intake -------------------------------------------------------------------------------

fn call(n: usize) -> NewIncident {
    let mut random = Random(n as u64 + 17);
    NewIncident {
        source: "110".into(),
        type_code: ["010301", "020100", "030102", "080200"][n % 4].into(),
        point: Some(random.point()),
        address: format!("测试地址{n}号"),
        description: "bench".into(),
        caller_phone: Some(format!("139{:08}", n % 100_000_000)),
        ..NewIncident::default()
    }
}

/// Durable incidents per second through the engine: the median over rounds.
async fn intake(engine: &Arc<Engine>, options: &DispatchBenchOptions) -> anyhow::Result<f64> {
    let caller = {
        let login = engine.login("dispatcher", PASSWORD, None, None).await?;
        Caller::new(fangkong_core::auth::Actor::User(engine.authenticate(&login.token)?.actor))
    };
    let mut rates = Vec::new();
    for round in 0..options.rounds {
        let started = Instant::now();
        let workers: Vec<_> = (0..options.callers)
            .map(|worker| {
                let (engine, caller) = (Arc::clone(engine), caller.clone());
                let (per_worker, callers) = (options.incidents.div_ceil(options.callers), options.callers);
                tokio::spawn(async move {
                    for i in 0..per_worker {
                        let n = round * 10_000_000 + i * callers + worker;
                        engine.create_incident(&caller, call(n)).await?;
                    }
                    anyhow::Ok(per_worker)
                })
            })
            .collect();
        let mut created = 0;
        for worker in workers {
            created += worker.await??;
        }
        let rate = created as f64 / started.elapsed().as_secs_f64();
        eprintln!(
            "bench dispatch: {} intake round {round}: {created} incidents, {rate:.0}/s",
            engine.backend().as_str()
        );
        rates.push(rate);
    }
    Ok(median(&rates))
}

// ---- HTTP intake --------------------------------------------------------------------------

/// Sends `bodies` as `POST /api/v1/incidents` over one keep-alive connection; returns each
/// round trip in microseconds.
async fn http_client(address: std::net::SocketAddr, token: String, bodies: Vec<String>) -> anyhow::Result<Vec<f64>> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let mut latencies = Vec::with_capacity(bodies.len());
    let mut buffer = Vec::with_capacity(8_192);
    for body in bodies {
        let request = format!(
            "POST /api/v1/incidents HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let at = Instant::now();
        stream.write_all(request.as_bytes()).await?;
        buffer.clear();
        // Read the head, then as much body as content-length says.
        let (head_end, length) = loop {
            let mut chunk = [0u8; 4_096];
            let n = stream.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "the server closed the connection");
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()))
                    .transpose()?
                    .unwrap_or(0);
                break (end + 4, length);
            }
        };
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 4_096];
            let n = stream.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "the server closed the connection");
            buffer.extend_from_slice(&chunk[..n]);
        }
        latencies.push(at.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(buffer.starts_with(b"HTTP/1.1 201"), "{}", String::from_utf8_lossy(&buffer));
    }
    Ok(latencies)
}

async fn over_http(engine: &Arc<Engine>, options: &DispatchBenchOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let token = engine.login("dispatcher", PASSWORD, None, None).await?.token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = fangkong_server::router(fangkong_server::AppState::new(Arc::clone(engine)));
    let server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
    });
    let (mut rates, mut latencies) = (Vec::new(), Vec::new());
    for round in 0..options.rounds {
        let mut bodies: Vec<Vec<String>> = vec![Vec::new(); options.connections];
        for i in 0..options.http_incidents {
            let mut random = Random((round * 1_000_000 + i) as u64 + 99);
            let point = random.point();
            bodies[i % options.connections].push(format!(
                r#"{{"source":"110","type_code":"020100","lat":{:.6},"lon":{:.6},"address":"HTTP {i}","caller_phone":"13900000000"}}"#,
                point.lat(),
                point.lon()
            ));
        }
        let started = Instant::now();
        let clients: Vec<_> =
            bodies.into_iter().map(|b| tokio::spawn(http_client(address, token.clone(), b))).collect();
        let mut sent = 0;
        for client in clients {
            let mut round_latencies = client.await??;
            sent += round_latencies.len();
            latencies.append(&mut round_latencies);
        }
        rates.push(sent as f64 / started.elapsed().as_secs_f64());
    }
    server.abort();
    Figure::new(BENCH, "http_intake_durable_sqlite", median(&rates), "incidents/s", Better::Higher).print(out)?;
    Figure::new(BENCH, "http_intake_p99", percentile(&latencies, 99.0), "us", Better::Lower).print(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quick_run_prints_every_figure() {
        let mut out = Vec::new();
        let options = DispatchBenchOptions { redis_address: None, ..DispatchBenchOptions::quick() };
        run(&options, &mut out).await.unwrap();
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let metrics: Vec<&str> = lines.iter().map(|l| l["metric"].as_str().unwrap()).collect();
        assert_eq!(
            metrics,
            [
                "recommend_p50",
                "recommend_p99",
                "intake_durable_sqlite",
                "http_intake_durable_sqlite",
                "http_intake_p99"
            ]
        );
        assert!(lines.iter().all(|l| l["value"].as_f64().unwrap() > 0.0), "{lines:?}");
    }
}
