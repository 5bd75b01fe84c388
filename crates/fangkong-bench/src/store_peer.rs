//! The PostgreSQL peer of `bench store` as its experts would write the client: the same
//! rows into the same table, but each single row one prepared autocommit `INSERT … VALUES`
//! (one round trip; the store's backend opens a transaction around it), concurrent writers
//! on their own connections (16 and 64; the faster counts), and a batch as one autocommit
//! `INSERT … SELECT FROM unnest` of the rows sent as arrays. Same durability
//! (`synchronous_commit=on`). The client runs on a single-threaded runtime of its own.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::report::{median, percentile};
use crate::store::{BackendFigures, StoreBenchOptions, row};

const INSERT_ONE: &str = "INSERT INTO code_entries (kind, code, name_zh, name_en, priority, active, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const INSERT_MANY: &str = "INSERT INTO code_entries (kind, code, name_zh, name_en, priority, active, updated_at) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::bool[], $7::bigint[])";

/// What the peer's label says.
pub(crate) const LABEL: &str = "postgres by an expert client: a prepared autocommit INSERT … VALUES per row \
     (single), writers on 16 or 64 connections (the faster), a batch as one autocommit INSERT … SELECT FROM \
     unnest; synchronous_commit=on";

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("connecting the expert client")?;
    tokio::spawn(connection);
    client.batch_execute("SET synchronous_commit = on").await?;
    Ok(client)
}

async fn insert_one(
    client: &tokio_postgres::Client,
    statement: &tokio_postgres::Statement,
    round: usize,
    phase: &str,
    n: usize,
) -> anyhow::Result<()> {
    let entry = row(round, phase, n);
    let priority: Option<i16> = entry.priority.map(i16::from);
    client
        .execute(
            statement,
            &[
                &entry.kind.as_str(),
                &entry.code,
                &entry.name_zh,
                &entry.name_en,
                &priority,
                &entry.active,
                &entry.updated_at.as_millis(),
            ],
        )
        .await?;
    Ok(())
}

/// Runs the same three ways of writing as the store's own measure, in the schema at `url`
/// (migrated, so `code_entries` exists); the rows' codes differ from the store's by phase.
///
/// On a thread of its own with a single-threaded runtime ([`crate::report::on_own_thread`]).
pub(crate) fn measure(url: &str, options: &StoreBenchOptions) -> anyhow::Result<BackendFigures> {
    crate::report::on_own_thread(measure_here(url, options))
}

async fn measure_here(url: &str, options: &StoreBenchOptions) -> anyhow::Result<BackendFigures> {
    let client = connect(url).await?;
    let one = client.prepare(INSERT_ONE).await?;
    let many = client.prepare(INSERT_MANY).await?;
    let (mut single_rates, mut concurrent_rates, mut batch_rates, mut latencies_us) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..options.rounds {
        let started = Instant::now();
        for n in 0..options.single_rows {
            let t = Instant::now();
            insert_one(&client, &one, round, "xs", n).await?;
            latencies_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        single_rates.push(options.single_rows as f64 / started.elapsed().as_secs_f64());

        // The writers on 16 connections, then on 64: the faster is the expert's choice.
        let mut best: f64 = 0.0;
        for (attempt, connections) in [16usize, 64].into_iter().enumerate() {
            let connections = connections.min(options.writers);
            let per_writer = options.concurrent_rows / options.writers;
            let mut clients = Vec::new();
            for _ in 0..connections {
                let client = connect(url).await?;
                let statement = client.prepare(INSERT_ONE).await?;
                clients.push(Arc::new((client, statement)));
            }
            let started = Instant::now();
            let mut tasks = Vec::new();
            for writer in 0..options.writers {
                // Writers share connections round-robin (a pool of `connections`).
                let connection = Arc::clone(&clients[writer % connections]);
                let phase = format!("xc{attempt}");
                tasks.push(tokio::spawn(async move {
                    for n in 0..per_writer {
                        insert_one(&connection.0, &connection.1, round, &phase, writer * per_writer + n).await?;
                    }
                    anyhow::Ok(())
                }));
            }
            for task in tasks {
                task.await??;
            }
            best = best.max((per_writer * options.writers) as f64 / started.elapsed().as_secs_f64());
        }
        concurrent_rates.push(best);

        let started = Instant::now();
        for b in 0..options.batches {
            let rows: Vec<_> = (0..options.batch_rows).map(|n| row(round, "xb", b * options.batch_rows + n)).collect();
            let kinds: Vec<&str> = rows.iter().map(|e| e.kind.as_str()).collect();
            let codes: Vec<&str> = rows.iter().map(|e| e.code.as_str()).collect();
            let names_zh: Vec<&str> = rows.iter().map(|e| e.name_zh.as_str()).collect();
            let names_en: Vec<&str> = rows.iter().map(|e| e.name_en.as_str()).collect();
            let priorities: Vec<Option<i16>> = rows.iter().map(|e| e.priority.map(i16::from)).collect();
            let active: Vec<bool> = rows.iter().map(|e| e.active).collect();
            let millis: Vec<i64> = rows.iter().map(|e| e.updated_at.as_millis()).collect();
            client.execute(&many, &[&kinds, &codes, &names_zh, &names_en, &priorities, &active, &millis]).await?;
        }
        batch_rates.push((options.batches * options.batch_rows) as f64 / started.elapsed().as_secs_f64());
        eprintln!(
            "bench store: postgres (expert client) round {}/{}: single {:.0}/s, concurrent {:.0}/s, batch {:.0}/s",
            round + 1,
            options.rounds,
            single_rates[round],
            concurrent_rates[round],
            batch_rates[round]
        );
    }
    Ok(BackendFigures {
        single_rate: median(&single_rates),
        single_p50_us: percentile(&latencies_us, 50.0),
        single_p99_us: percentile(&latencies_us, 99.0),
        concurrent_rate: median(&concurrent_rates),
        batch_rate: median(&batch_rates),
    })
}
