//! `fangkong bench registry`: the housing registry at the city's scale.
//!
//! * **Import** — the synthetic city's rental units and residents (20 M at scale 1) are
//!   written to CSV, then imported through the engine into a fresh SQLite file: every row
//!   parsed, checked (GB 11643 check character, dates, jurisdiction), identity number and
//!   phone sealed with ChaCha20-Poly1305 and blind-indexed with HMAC-SHA256, all in one
//!   transaction. Rows per second per file and overall, and the process's peak memory.
//! * **Lookup** — `Engine::match_id_number` (blind index → the resident's code and
//!   community, nothing decrypted) for a sample of the imported numbers: p50/p99. An
//!   audited search by number (purpose stated, audit record durably written, the person
//!   decrypted) is reported beside it. Our lookups run right after our import, the
//!   peer's right after its `COPY`: each with the page cache its own load left. Ours run
//!   a second time once the kernel has written everything back to storage (`sync`), and
//!   the bench reports how much was still unwritten when the first lookups began: to tell
//!   a tail caused by write-back from one that is not. Then each lookup follows an audited
//!   search, as on a live registry that is written to between lookups: SQLite then drops
//!   the reading connection's page cache, so these lookups read every page on their way
//!   down both trees (the key bucket's and the resident's).
//! * **Peer** — with `--postgres`, the same residents file loaded by PostgreSQL's `COPY`
//!   into a plain table (numbers in clear, a primary key and a unique index on the number
//!   maintained during the load, as ours are), and the same lookups as an indexed query
//!   over loopback. PostgreSQL does no validation or encryption.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use fangkong_engine::registry::{ImportFormat, ImportKind, ResidentQuery};
use fangkong_engine::{Caller, Engine, EngineConfig};
use fangkong_sim::city::{CityOptions, shenzhen};
use fangkong_sim::population::{self, Building, PopulationOptions, PopulationSink, Resident, Unit};
use futures_util::SinkExt;

use crate::report::{Better, Figure, percentile};

const BENCH: &str = "registry";

#[derive(Clone, Debug)]
pub struct RegistryBenchOptions {
    pub scale: f64,
    pub lookups: usize,
    pub audited_lookups: usize,
    pub postgres_url: Option<String>,
    pub dir: Option<std::path::PathBuf>,
}

impl Default for RegistryBenchOptions {
    fn default() -> RegistryBenchOptions {
        RegistryBenchOptions { scale: 1.0, lookups: 100_000, audited_lookups: 2_000, postgres_url: None, dir: None }
    }
}

impl RegistryBenchOptions {
    /// A tiny run that exercises every path.
    pub fn quick() -> RegistryBenchOptions {
        RegistryBenchOptions { scale: 0.0005, lookups: 200, audited_lookups: 20, ..RegistryBenchOptions::default() }
    }
}

/// Writes the import files: `properties.csv` (a unit per row with its building) and
/// `residents.csv`; keeps a sample of identity numbers for the lookups.
struct Files {
    properties: BufWriter<File>,
    residents: BufWriter<File>,
    building: Option<Building>,
    every: u64,
    seen: u64,
    sample: Vec<String>,
    rows: [u64; 2],
    error: Option<std::io::Error>,
}

impl Files {
    fn write(&mut self, which: usize, line: std::fmt::Arguments<'_>) {
        if self.error.is_some() {
            return;
        }
        let file = if which == 0 { &mut self.properties } else { &mut self.residents };
        if let Err(error) = file.write_fmt(line) {
            self.error = Some(error);
        }
        self.rows[which] += 1;
    }
}

impl PopulationSink for Files {
    fn building(&mut self, building: &Building) {
        self.building = Some(building.clone());
    }
    fn unit(&mut self, unit: &Unit) {
        let Some(b) = self.building.clone() else { return };
        let (area, rooms, usage) = fangkong_sim::registry_files::unit_shape(unit, b.kind);
        self.write(
            0,
            format_args!(
                "{},{},{},{:.6},{:.6},{},{},{},{},{area},{rooms},{usage},{}\n",
                b.id,
                b.address,
                b.grid,
                b.lon,
                b.lat,
                b.kind.as_str(),
                b.floors,
                unit.id,
                unit.floor,
                u8::from(unit.rental)
            ),
        );
    }
    fn resident(&mut self, r: &Resident) {
        self.seen += 1;
        if self.seen.is_multiple_of(self.every) {
            self.sample.push(r.id_number.clone());
        }
        let (y, m, d) = population::civil_date(r.birth_day);
        let permit = r.permit_expires_day.map(population::civil_date);
        let permit = permit.map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")).unwrap_or_default();
        let sex = if r.sex == population::Sex::Male { "M" } else { "F" };
        // A synthetic mobile number (the 199 range), from the resident's sequence.
        let phone = format!("199{:08}", self.seen % 100_000_000);
        self.write(
            1,
            format_args!(
                "{},{},{sex},{y:04}-{m:02}-{d:02},{},{phone},{},{},{permit}\n",
                r.id, r.name, r.id_number, r.unit, r.grid
            ),
        );
    }
    fn landlord(&mut self, _: &population::Landlord) {}
    fn tenancy(&mut self, _: &population::Tenancy) {}
    fn force_unit(&mut self, _: &population::ForceUnit) {}
    fn force_member(&mut self, _: &population::ForceMember) {}
    fn place(&mut self, _: &population::Place) {}
    fn informant(&mut self, _: &population::Informant) {}
}

/// The process's peak resident memory (VmHWM), in MiB, where the system tells it.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Bytes this process has made the kernel read from the disk (`/proc/self/io`): what the
/// page cache did not hold.
fn disk_read_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines().find_map(|l| l.strip_prefix("read_bytes:")).and_then(|v| v.trim().parse().ok())
}

/// Bytes the kernel has yet to write back to storage (dirty or being written), from
/// `/proc/meminfo`.
fn unwritten_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |field: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((kib("Dirty:")? + kib("Writeback:")?) * 1024)
}

/// The latency of each lookup, in µs, in the given order.
async fn lookups(engine: &Engine, sample: &[String], order: &[usize]) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(order.len());
    for &i in order {
        let began = Instant::now();
        let found = engine.match_id_number(&sample[i]).await?;
        latencies.push(began.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(found.is_some(), "an imported number was not found");
    }
    Ok(latencies)
}

fn generate(dir: &Path, options: &RegistryBenchOptions) -> anyhow::Result<(Vec<String>, [u64; 2])> {
    let city = shenzhen(&CityOptions::default());
    let population = PopulationOptions { scale: options.scale, ..PopulationOptions::default() };
    let expected = (population.residents * options.scale).max(1.0) as u64;
    let create = |name: &str| -> anyhow::Result<BufWriter<File>> {
        Ok(BufWriter::with_capacity(1 << 20, File::create(dir.join(name)).context("creating the CSV files")?))
    };
    let mut files = Files {
        properties: create("properties.csv")?,
        residents: create("residents.csv")?,
        building: None,
        every: (expected / options.lookups.max(1) as u64).max(1),
        seen: 0,
        sample: Vec::new(),
        rows: [0; 2],
        error: None,
    };
    writeln!(files.properties, "building,address,grid,lon,lat,kind,floors,unit,floor,area_m2,rooms,usage,rental")?;
    writeln!(files.residents, "code,name,sex,birth_date,id_number,phone,unit,grid,permit_expires")?;
    population::generate(&city, &population, &mut files, &mut |_| {});
    if let Some(error) = files.error.take() {
        return Err(error).context("writing the CSV files");
    }
    files.properties.flush()?;
    files.residents.flush()?;
    Ok((files.sample, files.rows))
}

pub async fn run(options: &RegistryBenchOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = match &options.dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("creating the benchmark directory")?;
    let started = Instant::now();
    let (sample, rows) = generate(dir.path(), options)?;
    eprintln!(
        "bench registry: wrote {} units and {} residents at scale {} in {:.0} s",
        rows[0],
        rows[1],
        options.scale,
        started.elapsed().as_secs_f64()
    );

    // The generator's own memory (the set that keeps numbers unique) is not the import's:
    // reset the peak (Linux: writing 5 to clear_refs resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    let engine = Arc::new(Engine::open(&url, EngineConfig::new(fangkong_engine::keys::KeyRing::generate())).await?);
    let system = Caller::system("bench").with_purpose("benchmark");
    let city = shenzhen(&CityOptions::default());
    engine.import_jurisdictions(&system, city.nodes).await?;

    let mut seconds = [0.0; 2];
    let mut checkpoints = 0.0;
    for (i, (kind, name)) in
        [(ImportKind::Properties, "properties.csv"), (ImportKind::Residents, "residents.csv")].into_iter().enumerate()
    {
        let path = dir.path().join(name);
        let size = std::fs::metadata(&path)?.len();
        let file = Box::new(std::io::BufReader::with_capacity(1 << 20, File::open(&path)?));
        let began = Instant::now();
        let report =
            engine.import_registry(&system, kind, ImportFormat::Csv, file, Some(size), Box::new(|_| {})).await?;
        seconds[i] = began.elapsed().as_secs_f64();
        anyhow::ensure!(report.rows == rows[i], "{name}: {} rows imported of {}", report.rows, rows[i]);
        let metric = format!("import_{}_sqlite", kind.as_str());
        Figure::new(BENCH, metric, rows[i] as f64 / seconds[i], "rows/s", Better::Higher).print(out)?;
        // The import was durable at its commit; SQLite then copies its WAL into the database
        // file in the background. That time is reported too, and the next step waits for it.
        let began = Instant::now();
        engine.store_settled().await;
        checkpoints += began.elapsed().as_secs_f64();
    }
    let total = (rows[0] + rows[1]) as f64 / (seconds[0] + seconds[1]);

    // Lookups through the engine, in a shuffled order (not the order they were written),
    // right after our load — as PostgreSQL's are right after its own, below: each system
    // is measured with the page cache its own load left, not the other's.
    let mut order: Vec<usize> = (0..sample.len()).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    // What the kernel still had to write to storage when the lookups began (the checkpoint
    // syncs the database file, so little is expected; measured at scale 1: 0.4 MiB).
    let unwritten_at_lookups = unwritten_bytes();
    let read_before = disk_read_bytes();
    let latencies = lookups(&engine, &sample, &order).await?;
    // Whether the tail is the disk (pages the cache did not hold) or the machine.
    let lookup_disk_reads = read_before.zip(disk_read_bytes()).map(|(a, b)| b.saturating_sub(a));
    // The same lookups once the kernel has written everything back (`sync`): the registry
    // as it is between imports, without the write-back of gigabytes beside it.
    let synced = std::process::Command::new("sync").status().is_ok_and(|s| s.success());
    let latencies_synced = if synced { Some(lookups(&engine, &sample, &order).await?) } else { None };
    // A live registry is written to between lookups (every search's audit record,
    // registrations, the city's other parts), and SQLite drops a reading connection's page
    // cache whenever the database has changed since that connection last read: so here each
    // lookup follows an audited search, and starts with a cold cache. The searches take
    // numbers from the far end of the shuffled sample, the lookups from the near end.
    let cycles = options.audited_lookups.max(options.lookups / 5).min(order.len() / 2);
    let (mut audited, mut between_writes) = (Vec::new(), Vec::new());
    for n in 0..cycles {
        let searched = sample[order[order.len() - 1 - n]].clone();
        let began = Instant::now();
        let found = engine.search_residents(&system, &ResidentQuery::IdNumber(searched)).await?;
        if n < options.audited_lookups {
            audited.push(began.elapsed().as_secs_f64() * 1e6);
        }
        anyhow::ensure!(found.len() == 1, "an imported number was not found by the audited search");
        let began = Instant::now();
        let found = engine.match_id_number(&sample[order[n]]).await?;
        between_writes.push(began.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(found.is_some(), "an imported number was not found");
    }

    let peer_copy = match &options.postgres_url {
        Some(url) => Some(postgres_peer(url, &dir.path().join("residents.csv"), &sample).await?),
        None => {
            eprintln!("bench registry: no PostgreSQL URL (--postgres); no peer figures");
            None
        }
    };
    let mut figure = Figure::new(BENCH, "import_residents_and_units_sqlite", total, "rows/s", Better::Higher);
    if let Some((copy, _)) = &peer_copy {
        figure = figure.with_peer("postgres COPY of residents.csv (plain, PK + unique index on the number)", *copy);
    }
    figure.print(out)?;
    if let Some(peak) = peak_memory_mib() {
        Figure::new(BENCH, "peak_memory", peak, "MiB", Better::Lower).print(out)?;
    }
    Figure::new(BENCH, "checkpoints_after_imports", checkpoints, "s", Better::Lower).print(out)?;
    let with_checkpoints = (rows[0] + rows[1]) as f64 / (seconds[0] + seconds[1] + checkpoints);
    Figure::new(
        BENCH,
        "import_residents_and_units_with_checkpoints_sqlite",
        with_checkpoints,
        "rows/s",
        Better::Higher,
    )
    .print(out)?;

    for (metric, p) in [("lookup_id_number_p50", 50.0), ("lookup_id_number_p99", 99.0)] {
        let mut figure = Figure::new(BENCH, metric, percentile(&latencies, p), "us", Better::Lower);
        if let Some((_, peer)) = &peer_copy {
            figure = figure.with_peer("postgres indexed SELECT by number (loopback)", percentile(peer, p));
        }
        figure.print(out)?;
    }
    if let Some(bytes) = lookup_disk_reads {
        let per_lookup = bytes as f64 / latencies.len().max(1) as f64;
        Figure::new(BENCH, "lookup_disk_read_bytes_per_lookup", per_lookup, "B", Better::Lower).print(out)?;
    }
    if let Some(bytes) = unwritten_at_lookups {
        let mib = bytes as f64 / (1024.0 * 1024.0);
        Figure::new(BENCH, "unwritten_to_disk_at_lookups", mib, "MiB", Better::Lower).print(out)?;
    }
    match &latencies_synced {
        Some(synced) => {
            for (metric, p) in [("lookup_id_number_p50_after_sync", 50.0), ("lookup_id_number_p99_after_sync", 99.0)] {
                Figure::new(BENCH, metric, percentile(synced, p), "us", Better::Lower).print(out)?;
            }
        }
        None => eprintln!("bench registry: `sync` did not run; no lookups after it"),
    }
    for (metric, p) in [("lookup_id_number_p50_between_writes", 50.0), ("lookup_id_number_p99_between_writes", 99.0)] {
        Figure::new(BENCH, metric, percentile(&between_writes, p), "us", Better::Lower).print(out)?;
    }
    for (metric, p) in [("audited_search_p50", 50.0), ("audited_search_p99", 99.0)] {
        Figure::new(BENCH, metric, percentile(&audited, p), "us", Better::Lower).print(out)?;
    }
    engine.shutdown().await;
    Ok(())
}

/// COPY the residents file into PostgreSQL and look the sample up there: rows/s and the
/// lookup latencies (µs).
async fn postgres_peer(url: &str, residents: &Path, sample: &[String]) -> anyhow::Result<(f64, Vec<f64>)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(
            "DROP SCHEMA IF EXISTS bench_registry CASCADE; CREATE SCHEMA bench_registry;
             CREATE TABLE bench_registry.residents (code TEXT PRIMARY KEY, name TEXT, sex TEXT, birth_date DATE,
                 id_number TEXT NOT NULL, phone TEXT, unit TEXT, grid TEXT, permit_expires DATE);
             CREATE UNIQUE INDEX ON bench_registry.residents (id_number);",
        )
        .await?;
    let began = Instant::now();
    let sink =
        client.copy_in("COPY bench_registry.residents FROM STDIN WITH (FORMAT csv, HEADER true, NULL '')").await?;
    futures_util::pin_mut!(sink);
    let mut file = File::open(residents)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut rows = 0u64;
    loop {
        let n = std::io::Read::read(&mut file, &mut buffer)?;
        if n == 0 {
            break;
        }
        rows += buffer[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        sink.send(bytes::Bytes::copy_from_slice(&buffer[..n])).await?;
    }
    let copied = sink.finish().await?;
    let rate = copied as f64 / began.elapsed().as_secs_f64();
    anyhow::ensure!(copied + 1 == rows, "COPY loaded {copied} of {} rows", rows - 1);
    client.batch_execute("ANALYZE bench_registry.residents").await?;
    let statement = client.prepare("SELECT code, grid FROM bench_registry.residents WHERE id_number = $1").await?;
    let mut latencies = Vec::with_capacity(sample.len());
    for number in sample {
        let began = Instant::now();
        let found = client.query_opt(&statement, &[number]).await?;
        latencies.push(began.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(found.is_some(), "PostgreSQL did not find an imported number");
    }
    client.batch_execute("DROP SCHEMA bench_registry CASCADE").await?;
    Ok((rate, latencies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quick_run_prints_every_figure() {
        let mut out = Vec::new();
        run(&RegistryBenchOptions::quick(), &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        for metric in [
            "import_properties_sqlite",
            "import_residents_sqlite",
            "lookup_id_number_p99",
            "lookup_id_number_p99_after_sync",
            "lookup_id_number_p99_between_writes",
            "audited_search_p99",
        ] {
            assert!(text.contains(metric), "{metric} in {text}");
        }
    }
}
