//! The AVL bench's peer: a reference OsmAnd receiver such as a user would write when no
//! tracking server is at hand — an axum handler that reads the query string and stores the
//! fix in PostgreSQL through a pool of connections (deadpool, one connection per client
//! connection of the load generator), the table keyed (device, time) like our history.
//!
//! Two ways, both printed (where the better setup is a judgement, the bench runs both):
//! * [`Way::CommitEach`] — each fix inserted and committed before the answer
//!   (`synchronous_commit=on`; concurrent commits share WAL flushes);
//! * [`Way::Batched`] — answered at once, a writer task storing what has queued (up to
//!   10,000 fixes) in one multi-row `INSERT … SELECT FROM unnest(…)` per transaction: our
//!   listener's way (visible at once, durable when the batch commits).
//!
//! The rate counts a round when every fix of it is committed, as ours does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use crate::avl::{AvlBenchOptions, osmand_rounds};
use crate::report::{median, percentile};
use crate::store::BenchSchema;

/// How the reference receiver stores a fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    CommitEach,
    Batched,
}

impl Way {
    pub fn name(self) -> &'static str {
        match self {
            Way::CommitEach => "postgres_commit_each",
            Way::Batched => "postgres_batched",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Way::CommitEach => {
                "reference receiver (axum + deadpool-postgres, 64 connections): INSERT and commit per fix before the answer, synchronous_commit=on, PK (device, fixed_at)"
            }
            Way::Batched => {
                "reference receiver (axum + deadpool-postgres): answered at once, a writer task commits up to 10,000 queued fixes per INSERT … unnest, synchronous_commit=on, PK (device, fixed_at)"
            }
        }
    }
}

/// One fix as the receiver reads it.
struct PeerFix {
    device: String,
    fixed_at: i64,
    lat: f64,
    lon: f64,
    speed: Option<f64>,
    accuracy: Option<f64>,
    battery: Option<f64>,
}

fn read_fix(query: &str) -> Option<PeerFix> {
    let (mut device, mut fixed_at, mut lat, mut lon) = (None, None, None, None);
    let (mut speed, mut accuracy, mut battery) = (None, None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "id" | "deviceid" => device = Some(value.into_owned()),
            "timestamp" => fixed_at = value.parse::<i64>().ok().map(|s| s * 1000),
            "lat" => lat = value.parse::<f64>().ok(),
            "lon" => lon = value.parse::<f64>().ok(),
            "speed" => speed = value.parse::<f64>().ok(),
            "accuracy" => accuracy = value.parse::<f64>().ok(),
            "batt" => battery = value.parse::<f64>().ok(),
            _ => {}
        }
    }
    Some(PeerFix { device: device?, fixed_at: fixed_at?, lat: lat?, lon: lon?, speed, accuracy, battery })
}

const INSERT_ONE: &str = "INSERT INTO positions (device, fixed_at, lat, lon, speed, accuracy, battery) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
const INSERT_MANY: &str = "INSERT INTO positions (device, fixed_at, lat, lon, speed, accuracy, battery) \
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[]) \
     ON CONFLICT DO NOTHING";
const BATCH: usize = 10_000;

#[derive(Clone)]
struct Receiver {
    pool: Pool,
    queue: Option<tokio::sync::mpsc::Sender<PeerFix>>,
    stored: Arc<AtomicU64>,
}

async fn receive(State(receiver): State<Receiver>, RawQuery(query): RawQuery) -> StatusCode {
    let Some(fix) = query.as_deref().and_then(read_fix) else { return StatusCode::BAD_REQUEST };
    if let Some(queue) = &receiver.queue {
        return if queue.send(fix).await.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    }
    let Ok(client) = receiver.pool.get().await else { return StatusCode::SERVICE_UNAVAILABLE };
    let Ok(statement) = client.prepare_cached(INSERT_ONE).await else { return StatusCode::INTERNAL_SERVER_ERROR };
    let stored = client
        .execute(&statement, &[&fix.device, &fix.fixed_at, &fix.lat, &fix.lon, &fix.speed, &fix.accuracy, &fix.battery])
        .await;
    match stored {
        Ok(_) => {
            receiver.stored.fetch_add(1, Ordering::Relaxed);
            StatusCode::OK
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The writer task of [`Way::Batched`].
async fn write_batches(pool: Pool, mut queue: tokio::sync::mpsc::Receiver<PeerFix>, stored: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let Ok(client) = pool.get().await else { return };
        let columns = (
            batch.iter().map(|f| f.device.as_str()).collect::<Vec<_>>(),
            batch.iter().map(|f| f.fixed_at).collect::<Vec<_>>(),
            batch.iter().map(|f| f.lat).collect::<Vec<_>>(),
            batch.iter().map(|f| f.lon).collect::<Vec<_>>(),
            batch.iter().map(|f| f.speed).collect::<Vec<_>>(),
            batch.iter().map(|f| f.accuracy).collect::<Vec<_>>(),
            batch.iter().map(|f| f.battery).collect::<Vec<_>>(),
        );
        let written = client
            .execute(INSERT_MANY, &[&columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &columns.5, &columns.6])
            .await;
        if written.is_err() {
            eprintln!("bench avl: the reference receiver's writer failed: {written:?}");
            return;
        }
        stored.fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
    }
}

/// Runs the reference receiver `way` on a fresh schema: the median rate over rounds
/// (positions/s, counted when committed) and the p99 round trip (µs).
pub async fn run(admin_url: &str, options: &AvlBenchOptions, way: Way) -> anyhow::Result<(f64, f64)> {
    let schema = BenchSchema::create(admin_url).await?;
    let result = measure(&schema.url, options, way).await;
    schema.drop().await;
    result
}

async fn measure(url: &str, options: &AvlBenchOptions, way: Way) -> anyhow::Result<(f64, f64)> {
    let config: tokio_postgres::Config = url.parse()?;
    let manager =
        Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager).max_size(options.connections.clamp(1, 64)).runtime(Runtime::Tokio1).build()?;
    pool.get()
        .await?
        .batch_execute(
            "CREATE TABLE positions (device text NOT NULL, fixed_at bigint NOT NULL, lat float8 NOT NULL, \
             lon float8 NOT NULL, speed float8, accuracy float8, battery float8, PRIMARY KEY (device, fixed_at))",
        )
        .await?;
    let stored = Arc::new(AtomicU64::new(0));
    let queue = match way {
        Way::CommitEach => None,
        Way::Batched => {
            let (queue, receiver) = tokio::sync::mpsc::channel(1 << 20);
            tokio::spawn(write_batches(pool.clone(), receiver, Arc::clone(&stored)));
            Some(queue)
        }
    };
    let app = axum::Router::new().route("/", axum::routing::get(receive).post(receive)).with_state(Receiver {
        pool: pool.clone(),
        queue,
        stored: Arc::clone(&stored),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (rates, latencies) = osmand_rounds(address, options, || stored.load(Ordering::Relaxed)).await?;
    server.abort();
    let rows: i64 = pool.get().await?.query_one("SELECT count(*) FROM positions", &[]).await?.get(0);
    anyhow::ensure!(
        rows as u64 == stored.load(Ordering::Relaxed),
        "{rows} rows stored, {} counted",
        stored.load(Ordering::Relaxed)
    );
    pool.close();
    Ok((median(&rates), percentile(&latencies, 99.0)))
}
