//! `fangkong bench registry`: the housing registry at the city's scale.
//!
//! * **Import** — the synthetic city's rental units and residents (20 M at scale 1) are
//!   written to CSV, then imported through the engine into a fresh SQLite file: every row
//!   parsed, checked (GB 11643 check character, dates, jurisdiction), identity number and
//!   phone sealed with ChaCha20-Poly1305 and blind-indexed with HMAC-SHA256, all in one
//!   transaction. Rows per second per file and overall, and the process's peak memory.
//! * **Match** — `Engine::match_id_number` for a sample of the imported numbers: the
//!   person index → the resident's code and community, nothing decrypted, and the match's
//!   audit record durably written (a match is a question about a person): p50/p99. Each
//!   match writes, so each next one starts with the cold page cache SQLite leaves after a
//!   write: the live case is the only case. An audited search by number (the person
//!   decrypted) is reported beside it. Our matches run right after our import, the
//!   peer's right after its `COPY`: each with the page cache its own load left. Ours run
//!   a second time once the kernel has written everything back to storage (`sync`), and
//!   the bench reports how much was still unwritten when the first matches began: to tell
//!   a tail caused by write-back from one that is not.
//! * **Peer** — with `--postgres`, the same residents file loaded by PostgreSQL's `COPY`
//!   (numbers in clear; PostgreSQL does no validation or encryption) two ways, each counted
//!   to its `CHECKPOINT`: into a table whose primary key and unique index are kept during
//!   the load, and as an expert loads — a bare table, then both indexes built, with
//!   `maintenance_work_mem` and `max_wal_size` raised for it. Compared with our residents
//!   import counted to the end of its checkpoint (residents against residents). Then the
//!   same matches: an indexed `SELECT` by number over loopback and the audit row
//!   `INSERT`ed and committed (`synchronous_commit = on`, as our commits are synced),
//!   timed together.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
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
        RegistryBenchOptions { scale: 1.0, lookups: 10_000, audited_lookups: 2_000, postgres_url: None, dir: None }
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
    let system = Caller::system("bench").with_purpose("benchmark");
    let mut latencies = Vec::with_capacity(order.len());
    for &i in order {
        let began = Instant::now();
        let found = engine.match_id_number(&system, &sample[i]).await?;
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
    let engine = Engine::open(&url, EngineConfig::new(fangkong_engine::keys::KeyRing::generate())).await?;
    let system = Caller::system("bench").with_purpose("benchmark");
    let city = shenzhen(&CityOptions::default());
    engine.import_jurisdictions(&system, city.nodes).await?;

    let mut seconds = [0.0; 2];
    let mut checkpoint_seconds = [0.0; 2];
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
        checkpoint_seconds[i] = began.elapsed().as_secs_f64();
        checkpoints += checkpoint_seconds[i];
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
    // Audited searches by number (the person decrypted), from the far end of the sample.
    let mut audited = Vec::new();
    for n in 0..options.audited_lookups.min(order.len()) {
        let searched = sample[order[order.len() - 1 - n]].clone();
        let began = Instant::now();
        let found = engine.search_residents(&system, &ResidentQuery::IdNumber(searched)).await?;
        audited.push(began.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(found.len() == 1, "an imported number was not found by the audited search");
    }

    let peer = match &options.postgres_url {
        Some(url) => {
            Some(crate::report::on_own_thread(postgres_peer(url, &dir.path().join("residents.csv"), &sample))?)
        }
        None => {
            eprintln!("bench registry: no PostgreSQL URL (--postgres); no peer figures");
            None
        }
    };
    let checkpoint_of_residents = checkpoint_seconds[1];
    Figure::new(BENCH, "import_residents_and_units_sqlite", total, "rows/s", Better::Higher).print(out)?;
    // Residents against residents (PostgreSQL loads the same file), each counted to the
    // end of its checkpoint: the headline. PostgreSQL's better way is the peer; both are
    // printed.
    let residents_with_checkpoint = rows[1] as f64 / (seconds[1] + checkpoint_of_residents);
    let mut figure = Figure::new(
        BENCH,
        "import_residents_with_checkpoint_sqlite",
        residents_with_checkpoint,
        "rows/s",
        Better::Higher,
    );
    if let Some(peer) = &peer {
        let expert = format!(
            "postgres COPY of residents.csv into a bare table, then PK and unique index built, then CHECKPOINT \
             (maintenance_work_mem={PEER_MAINTENANCE_WORK_MEM}, max_wal_size={PEER_MAX_WAL_SIZE})"
        );
        let kept =
            "postgres COPY of residents.csv with PK and unique index kept during the load, then CHECKPOINT (defaults)";
        Figure::new(
            BENCH,
            "import_residents_with_checkpoint_vs_bare_then_index",
            residents_with_checkpoint,
            "rows/s",
            Better::Higher,
        )
        .with_peer(expert.clone(), peer.bare_then_index)
        .print(out)?;
        Figure::new(
            BENCH,
            "import_residents_with_checkpoint_vs_indexes_kept",
            residents_with_checkpoint,
            "rows/s",
            Better::Higher,
        )
        .with_peer(kept, peer.indexed_load)
        .print(out)?;
        figure = if peer.bare_then_index >= peer.indexed_load {
            figure.with_peer(expert, peer.bare_then_index)
        } else {
            figure.with_peer(kept, peer.indexed_load)
        };
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

    // The matches, each with its audit record committed, on both sides.
    for (metric, p) in [("match_id_number_p50", 50.0), ("match_id_number_p99", 99.0)] {
        let mut figure = Figure::new(BENCH, metric, percentile(&latencies, p), "us", Better::Lower);
        if let Some(peer) = &peer {
            figure = figure.with_peer(
                "postgres indexed SELECT by number then INSERT of the audit row, committed \
                 (synchronous_commit=on, loopback), timed together",
                percentile(&peer.matches, p),
            );
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
            for (metric, p) in [("match_id_number_p50_after_sync", 50.0), ("match_id_number_p99_after_sync", 99.0)] {
                Figure::new(BENCH, metric, percentile(synced, p), "us", Better::Lower).print(out)?;
            }
        }
        None => eprintln!("bench registry: `sync` did not run; no lookups after it"),
    }
    for (metric, p) in [("audited_search_p50", 50.0), ("audited_search_p99", 99.0)] {
        Figure::new(BENCH, metric, percentile(&audited, p), "us", Better::Lower).print(out)?;
    }
    engine.shutdown().await;
    Ok(())
}

/// What PostgreSQL did with the same residents file.
struct PeerFigures {
    /// Rows/s: `COPY` into a table whose primary key and unique index are kept during the
    /// load, then `CHECKPOINT`.
    indexed_load: f64,
    /// Rows/s: `COPY` into a bare table, then both indexes built, then `CHECKPOINT` — with
    /// `maintenance_work_mem` and `max_wal_size` raised for the load, as an expert loads.
    bare_then_index: f64,
    /// Matches (µs): the lookup and its audit row committed.
    matches: Vec<f64>,
}

/// The settings the expert load runs under (`max_wal_size` is the server's, set with
/// `ALTER SYSTEM` for the load and reset after it).
const PEER_MAINTENANCE_WORK_MEM: &str = "1GB";
const PEER_MAX_WAL_SIZE: &str = "8GB";

async fn copy_file(client: &tokio_postgres::Client, table: &str, residents: &Path) -> anyhow::Result<u64> {
    let sink = client.copy_in(&format!("COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true, NULL '')")).await?;
    futures_util::pin_mut!(sink);
    let mut file = File::open(residents)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    loop {
        let n = std::io::Read::read(&mut file, &mut buffer)?;
        if n == 0 {
            break;
        }
        lines += buffer[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        sink.send(bytes::Bytes::copy_from_slice(&buffer[..n])).await?;
    }
    let copied = sink.finish().await?;
    anyhow::ensure!(copied + 1 == lines, "COPY loaded {copied} of {} rows", lines - 1);
    Ok(copied)
}

const RESIDENT_COLUMNS: &str = "code TEXT NOT NULL, name TEXT, sex TEXT, birth_date DATE, id_number TEXT NOT NULL, \
     phone TEXT, unit TEXT, grid TEXT, permit_expires DATE";

/// The residents file loaded by PostgreSQL both ways (each on a fresh table, each counted
/// to its `CHECKPOINT`), and the sample looked up in the second table, one after another
/// and each after a committed write.
async fn postgres_peer(url: &str, residents: &Path, sample: &[String]) -> anyhow::Result<PeerFigures> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS bench_registry CASCADE; CREATE SCHEMA bench_registry;
             CREATE TABLE bench_registry.indexed ({RESIDENT_COLUMNS}, PRIMARY KEY (code));
             CREATE UNIQUE INDEX ON bench_registry.indexed (id_number);
             CREATE TABLE bench_registry.residents ({RESIDENT_COLUMNS});
             CREATE TABLE bench_registry.audit (seq bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), detail text);
             CHECKPOINT;"
        ))
        .await?;
    // One way: the indexes kept up to date during the load (as a table in use would).
    let began = Instant::now();
    let copied = copy_file(&client, "bench_registry.indexed", residents).await?;
    client.batch_execute("CHECKPOINT").await?;
    let indexed_load = copied as f64 / began.elapsed().as_secs_f64();
    client.batch_execute("DROP TABLE bench_registry.indexed; CHECKPOINT").await?;

    // The expert's way: a bare table, then the indexes, with memory and WAL room for it.
    // ALTER SYSTEM may not share an implicit transaction with other statements.
    client.batch_execute(&format!("ALTER SYSTEM SET max_wal_size = '{PEER_MAX_WAL_SIZE}'")).await?;
    client.batch_execute("SELECT pg_reload_conf()").await?;
    client.batch_execute(&format!("SET maintenance_work_mem = '{PEER_MAINTENANCE_WORK_MEM}'")).await?;
    let loaded = async {
        let began = Instant::now();
        let copied = copy_file(&client, "bench_registry.residents", residents).await?;
        client
            .batch_execute(
                "ALTER TABLE bench_registry.residents ADD PRIMARY KEY (code);
                 CREATE UNIQUE INDEX ON bench_registry.residents (id_number);
                 CHECKPOINT;",
            )
            .await?;
        anyhow::Ok(copied as f64 / began.elapsed().as_secs_f64())
    }
    .await;
    client.batch_execute("ALTER SYSTEM RESET max_wal_size").await?;
    client.batch_execute("SELECT pg_reload_conf(); RESET maintenance_work_mem").await?;
    let bare_then_index = loaded?;
    client.batch_execute("ANALYZE bench_registry.residents").await?;

    let statement = client.prepare("SELECT code, grid FROM bench_registry.residents WHERE id_number = $1").await?;
    let audit = client.prepare("INSERT INTO bench_registry.audit (detail) VALUES ($1)").await?;
    let mut matches = Vec::with_capacity(sample.len());
    for number in sample {
        let began = Instant::now();
        let found = client.query_opt(&statement, &[number]).await?;
        client.execute(&audit, &[&format!("match {}", if found.is_some() { "found" } else { "not found" })]).await?;
        matches.push(began.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(found.is_some(), "PostgreSQL did not find an imported number");
    }
    client.batch_execute("DROP SCHEMA bench_registry CASCADE").await?;
    Ok(PeerFigures { indexed_load, bare_then_index, matches })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quick_run_prints_every_figure() {
        let mut out = Vec::new();
        // With the test PostgreSQL when there is one: the peer's figures too.
        let postgres_url = std::env::var("FANGKONG_TEST_POSTGRES_URL").ok();
        let options = RegistryBenchOptions { postgres_url: postgres_url.clone(), ..RegistryBenchOptions::quick() };
        run(&options, &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        if postgres_url.is_some() {
            for metric in [
                "import_residents_with_checkpoint_vs_bare_then_index",
                "import_residents_with_checkpoint_vs_indexes_kept",
                "match_id_number_p99",
            ] {
                let line =
                    text.lines().find(|l| l.contains(&format!("\"{metric}\""))).unwrap_or_else(|| panic!("{metric}"));
                assert!(line.contains("\"peer\":\"postgres"), "{line}");
            }
        }
        for metric in [
            "import_properties_sqlite",
            "import_residents_sqlite",
            "match_id_number_p99",
            "match_id_number_p99_after_sync",
            "import_residents_with_checkpoint_sqlite",
            "audited_search_p99",
        ] {
            assert!(text.contains(metric), "{metric} in {text}");
        }
    }
}
