//! `fangkong bench store`: durable writes per second on each backend.
//!
//! Three ways of writing, each in fresh rounds on a fresh database:
//! * **single** — one writer, one row per transaction, each awaited before the next: the
//!   rate is bounded by the disk's sync latency (p50/p99 reported too);
//! * **concurrent single** — many writers at once, still one row per request and each
//!   acknowledged only when durable: what an API under load sees. SQLite's writer thread
//!   commits whatever has queued in one transaction (group commit);
//! * **batch** — many rows per transaction, as an import does.
//!
//! Every write goes through the same [`Store`] methods the engine uses, with the same
//! durability settings (SQLite WAL + `synchronous=FULL`; PostgreSQL `synchronous_commit=on`).
//! PostgreSQL is measured in the same run when a URL is given, two ways: through the same
//! `Store` methods (its backend: a transaction around every write), and as an expert's
//! client would write the same rows (`store_peer`: autocommit single statements, 16 or 64
//! connections). SQLite's figures carry both, each labelled; the headline the better.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use fangkong_core::codes::{CodeEntry, CodeKind};
use fangkong_core::time::Timestamp;
use fangkong_store::Store;

use crate::report::{Better, Figure, median, percentile};

const BENCH: &str = "store";
/// The peer and its settings: the same `Store` methods on PostgreSQL.
const PEER: &str = "postgres (the store's PostgreSQL backend: the same Store methods, 16 pooled connections, \
     synchronous_commit=on, defaults otherwise; a batch is one INSERT … SELECT FROM unnest)";

#[derive(Clone, Debug)]
pub struct StoreBenchOptions {
    /// Where the SQLite file goes (its file system decides the sync cost).
    pub sqlite_dir: Option<PathBuf>,
    /// A PostgreSQL to measure beside SQLite; the bench works in a schema of its own and
    /// drops it afterwards.
    pub postgres_url: Option<String>,
    pub rounds: usize,
    pub single_rows: usize,
    pub concurrent_rows: usize,
    pub writers: usize,
    pub batches: usize,
    pub batch_rows: usize,
}

impl Default for StoreBenchOptions {
    fn default() -> StoreBenchOptions {
        StoreBenchOptions {
            sqlite_dir: None,
            postgres_url: None,
            rounds: 5,
            single_rows: 300,
            concurrent_rows: 4_000,
            writers: 64,
            batches: 50,
            batch_rows: 1_000,
        }
    }
}

impl StoreBenchOptions {
    /// A run small enough for a test: every code path, no meaningful figures.
    pub fn quick() -> StoreBenchOptions {
        StoreBenchOptions {
            rounds: 1,
            single_rows: 10,
            concurrent_rows: 64,
            writers: 8,
            batches: 2,
            batch_rows: 50,
            ..StoreBenchOptions::default()
        }
    }
}

/// A figure's name, unit, direction and how to read it from a backend's results.
type Metric = (&'static str, &'static str, Better, fn(&BackendFigures) -> f64);

#[derive(Clone, Debug, Default)]
pub(crate) struct BackendFigures {
    pub(crate) single_rate: f64,
    pub(crate) single_p50_us: f64,
    pub(crate) single_p99_us: f64,
    pub(crate) concurrent_rate: f64,
    pub(crate) batch_rate: f64,
}

/// Runs the benchmark and prints its figures to `out` as they are known.
pub async fn run(options: &StoreBenchOptions, out: &mut dyn Write) -> anyhow::Result<Vec<Figure>> {
    let dir = match &options.sqlite_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("creating the SQLite benchmark directory")?;
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    eprintln!("bench store: SQLite at {}", dir.path().display());
    let (store, _) = Store::open_and_migrate(&sqlite_url).await.context("opening SQLite")?;
    let sqlite = measure(Arc::new(store), options).await?;

    let postgres = match &options.postgres_url {
        Some(url) => {
            let schema = BenchSchema::create(url).await?;
            eprintln!("bench store: PostgreSQL at {} (schema {})", redact(url), schema.name);
            let (store, _) = Store::open_and_migrate(&schema.url).await.context("opening PostgreSQL")?;
            let figures = measure(Arc::new(store), options).await;
            // The same rows as an expert's client would write them, into the same table.
            let expert = match &figures {
                Ok(_) => crate::store_peer::measure(&schema.url, options),
                Err(_) => Ok(BackendFigures::default()),
            };
            schema.drop().await;
            Some((figures?, expert?))
        }
        None => {
            eprintln!(
                "bench store: no PostgreSQL URL (--postgres or FANGKONG_BENCH_POSTGRES_URL); measuring SQLite only"
            );
            None
        }
    };

    let mut figures = Vec::new();
    let metrics: [Metric; 5] = [
        ("single_insert", "rows/s", Better::Higher, |f| f.single_rate),
        ("single_insert_p50", "us", Better::Lower, |f| f.single_p50_us),
        ("single_insert_p99", "us", Better::Lower, |f| f.single_p99_us),
        ("concurrent_single_insert", "rows/s", Better::Higher, |f| f.concurrent_rate),
        ("batch_insert", "rows/s", Better::Higher, |f| f.batch_rate),
    ];
    for (name, unit, better, value) in metrics {
        let mut figure = Figure::new(BENCH, format!("sqlite.{name}"), value(&sqlite), unit, better);
        if let Some((store_backend, expert)) = &postgres {
            // Both peers, each labelled; the headline takes the better of the two.
            for (suffix, label, peer) in
                [("vs_store_backend", PEER, store_backend), ("vs_expert_client", crate::store_peer::LABEL, expert)]
            {
                let line = Figure::new(BENCH, format!("sqlite.{name}_{suffix}"), value(&sqlite), unit, better)
                    .with_peer(label, value(peer));
                line.print(out)?;
                figures.push(line);
            }
            let expert_better = match better {
                Better::Higher => value(expert) >= value(store_backend),
                Better::Lower => value(expert) <= value(store_backend),
            };
            figure = match expert_better {
                true => figure.with_peer(crate::store_peer::LABEL, value(expert)),
                false => figure.with_peer(PEER, value(store_backend)),
            };
        }
        figure.print(out)?;
        figures.push(figure);
    }
    if let Some((store_backend, expert)) = &postgres {
        for (prefix, peer) in [("postgres", store_backend), ("postgres_expert", expert)] {
            for (name, unit, better, value) in metrics {
                let figure = Figure::new(BENCH, format!("{prefix}.{name}"), value(peer), unit, better);
                figure.print(out)?;
                figures.push(figure);
            }
        }
    }
    Ok(figures)
}

pub(crate) fn row(round: usize, phase: &str, n: usize) -> CodeEntry {
    CodeEntry {
        kind: CodeKind::Disposition,
        code: format!("b{round}_{phase}_{n}"),
        name_zh: "基准测试处置".into(),
        name_en: "Benchmark disposition".into(),
        priority: None,
        active: true,
        updated_at: Timestamp::from_millis(1_764_288_000_000 + n as i64),
    }
}

async fn measure(store: Arc<Store>, options: &StoreBenchOptions) -> anyhow::Result<BackendFigures> {
    let backend = store.backend().as_str();
    let (mut single_rates, mut concurrent_rates, mut batch_rates, mut latencies_us) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        // One writer, one durable row at a time.
        let started = Instant::now();
        for n in 0..options.single_rows {
            let t = Instant::now();
            store.insert_code(&row(round, "s", n)).await?;
            latencies_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        single_rates.push(options.single_rows as f64 / started.elapsed().as_secs_f64());

        // Many writers, one durable row per request each.
        let started = Instant::now();
        let per_writer = options.concurrent_rows / options.writers;
        let mut tasks = Vec::new();
        for writer in 0..options.writers {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..per_writer {
                    store.insert_code(&row(round, "c", writer * per_writer + n)).await?;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        concurrent_rates.push((per_writer * options.writers) as f64 / started.elapsed().as_secs_f64());

        // Batches: many rows per transaction.
        let batches: Vec<Vec<CodeEntry>> = (0..options.batches)
            .map(|b| (0..options.batch_rows).map(|n| row(round, "b", b * options.batch_rows + n)).collect())
            .collect();
        let started = Instant::now();
        for batch in &batches {
            store.insert_codes(batch, None).await?;
        }
        batch_rates.push((options.batches * options.batch_rows) as f64 / started.elapsed().as_secs_f64());
        eprintln!(
            "bench store: {backend} round {}/{}: single {:.0}/s, concurrent {:.0}/s, batch {:.0}/s",
            round + 1,
            options.rounds,
            single_rates[round],
            concurrent_rates[round],
            batch_rates[round]
        );
    }
    store.close().await;
    Ok(BackendFigures {
        single_rate: median(&single_rates),
        single_p50_us: percentile(&latencies_us, 50.0),
        single_p99_us: percentile(&latencies_us, 99.0),
        concurrent_rate: median(&concurrent_rates),
        batch_rate: median(&batch_rates),
    })
}

/// A schema of the benchmark's own in the given PostgreSQL, dropped when done.
pub(crate) struct BenchSchema {
    admin_url: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

impl BenchSchema {
    pub(crate) async fn create(admin_url: &str) -> anyhow::Result<BenchSchema> {
        let name = format!(
            "fk_bench_{}_{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos()
        );
        let client = connect(admin_url).await?;
        client.batch_execute(&format!("CREATE SCHEMA {name}")).await?;
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{name}");
        Ok(BenchSchema { admin_url: admin_url.to_string(), name, url })
    }

    pub(crate) async fn drop(self) {
        if let Ok(client) = connect(&self.admin_url).await {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)).await;
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {}", redact(url)))?;
    tokio::spawn(connection);
    Ok(client)
}

fn redact(url: &str) -> String {
    fangkong_store::redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quick_run_prints_every_figure_as_json_lines() {
        let mut out = Vec::new();
        // With the test PostgreSQL when there is one: both of its peers too.
        let postgres_url = std::env::var("FANGKONG_TEST_POSTGRES_URL").ok();
        let options = StoreBenchOptions { postgres_url: postgres_url.clone(), ..StoreBenchOptions::quick() };
        let figures = run(&options, &mut out).await.unwrap();
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), figures.len());
        let metrics: Vec<&str> = lines.iter().map(|l| l["metric"].as_str().unwrap()).collect();
        assert!(metrics.contains(&"sqlite.single_insert") && metrics.contains(&"sqlite.batch_insert"), "{metrics:?}");
        for line in &lines {
            assert_eq!(line["bench"], "store");
            assert!(line["value"].as_f64().unwrap() > 0.0, "{line}");
        }
        if postgres_url.is_some() {
            for metric in ["sqlite.single_insert_vs_expert_client", "sqlite.batch_insert_vs_store_backend"] {
                let line = lines.iter().find(|l| l["metric"] == metric).unwrap_or_else(|| panic!("{metric}"));
                assert!(line["peer_value"].as_f64().unwrap() > 0.0, "{line}");
            }
            assert!(metrics.contains(&"postgres_expert.concurrent_single_insert"), "{metrics:?}");
        }
    }
}
