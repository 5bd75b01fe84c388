//! `fangkong import jurisdictions FILE`: official boundaries into the tree, checked feature by
//! feature and stored all or nothing; `fangkong import residents|tenancies|properties FILE`:
//! registry files (CSV or XLSX) streamed with a progress bar, all or nothing, every bad row
//! named. Both act as the system and are audited under the operating-system user's name
//! (like the account commands).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use fangkong_core::jurisdiction::JurisdictionKind;
use fangkong_engine::boundaries::DEFAULT_TOLERANCE_M2;
use std::io::{IsTerminal, Write};

use fangkong_engine::registry::{ImportFormat, ImportKind, ImportProgress};
use fangkong_engine::{BoundaryImport, EngineError};
use fangkong_geo::Crs;

use crate::accounts::{open, terminal_caller};
use crate::print_line;

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Import boundaries (a GeoJSON FeatureCollection) at one level of the tree.
    Jurisdictions(ImportJurisdictionsArgs),
    /// Import residents (CSV or XLSX, one person per row), all or nothing.
    Residents(ImportRegistryArgs),
    /// Import tenancies (one per row, co-residents separated by `;`), all or nothing.
    Tenancies(ImportRegistryArgs),
    /// Import properties (one unit per row with its building and landlord), all or nothing.
    Properties(ImportRegistryArgs),
}

#[derive(Args, Debug)]
pub struct ImportRegistryArgs {
    /// The file: `.csv` (UTF-8, a header row) or `.xlsx` (the first sheet).
    file: PathBuf,
    #[command(flatten)]
    config: crate::config::ConfigArgs,
}

#[derive(Args, Debug)]
pub struct ImportJurisdictionsArgs {
    /// The GeoJSON file.
    file: PathBuf,
    /// The level of every feature: district, subdistrict, community, grid, police_station
    /// or police_district (or city).
    #[arg(long, value_parser = parse_level)]
    level: JurisdictionKind,
    /// The datum of the file's coordinates: wgs84 (GPS, OSM) or gcj02 (AMap, Tencent).
    #[arg(long, value_parser = parse_crs, default_value = "wgs84")]
    crs: Crs,
    /// The parent of new nodes that do not name one in `properties.parent`; by default the
    /// node of the level above that holds each feature.
    #[arg(long, value_name = "CODE")]
    parent: Option<String>,
    /// Allowed overlap between siblings and overhang beyond the parent, in square metres.
    #[arg(long, value_name = "M2", default_value_t = DEFAULT_TOLERANCE_M2)]
    tolerance_m2: f64,
    #[command(flatten)]
    config: crate::config::ConfigArgs,
}

fn parse_level(text: &str) -> Result<JurisdictionKind, String> {
    JurisdictionKind::parse(&text.replace('-', "_")).ok_or_else(|| {
        let known: Vec<_> = JurisdictionKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("use one of {}", known.join(", "))
    })
}

fn parse_crs(text: &str) -> Result<Crs, String> {
    Crs::parse(text).ok_or_else(|| "use wgs84 or gcj02".into())
}

pub async fn import(command: ImportCommand) -> anyhow::Result<ExitCode> {
    let (kind, args) = match command {
        ImportCommand::Jurisdictions(args) => return import_jurisdictions(args).await,
        ImportCommand::Residents(args) => (ImportKind::Residents, args),
        ImportCommand::Tenancies(args) => (ImportKind::Tenancies, args),
        ImportCommand::Properties(args) => (ImportKind::Properties, args),
    };
    let format = ImportFormat::from_name(&args.file.to_string_lossy())
        .ok_or_else(|| anyhow::anyhow!("{}: use a .csv or .xlsx file", args.file.display()))?;
    let file = std::fs::File::open(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let size = file.metadata().ok().map(|m| m.len());
    let engine = open(&args.config).await?;
    let started = std::time::Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut last_tenth = 0;
    let progress = move |p: ImportProgress| {
        let share = p.total_bytes.map_or(0.0, |t| p.bytes as f64 / t.max(1) as f64);
        let filled = (share * 30.0) as usize;
        let line = format!(
            "[{}{}] {:>3.0}%  {} rows  {:.0} rows/s",
            "#".repeat(filled.min(30)),
            ".".repeat(30 - filled.min(30)),
            share * 100.0,
            p.rows,
            p.rows as f64 / started.elapsed().as_secs_f64().max(1e-3)
        );
        let mut stderr = std::io::stderr().lock();
        if terminal {
            let _ = write!(stderr, "\r{line}");
        } else if (share * 10.0) as usize > last_tenth {
            last_tenth = (share * 10.0) as usize;
            let _ = writeln!(stderr, "{line}");
        }
        let _ = stderr.flush();
    };
    let source = Box::new(std::io::BufReader::with_capacity(1 << 20, file));
    let result = engine.import_registry(&terminal_caller(), kind, format, source, size, Box::new(progress)).await;
    if terminal {
        eprintln!();
    }
    engine.shutdown().await;
    match result {
        Ok(report) => {
            if !report.ignored_columns.is_empty() {
                eprintln!("{}: columns not read: {}", args.file.display(), report.ignored_columns.join(", "));
            }
            print_line(&format!(
                "{}: {} rows imported as {} records ({} {}) in {:.1} s",
                args.file.display(),
                report.rows,
                report.records,
                kind.as_str(),
                format!("{format:?}").to_lowercase(),
                started.elapsed().as_secs_f64()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(EngineError::ImportRefused { errors, bad_rows }) => {
            for error in &errors {
                eprintln!("{}: {error}", args.file.display());
            }
            if bad_rows > errors.len() as u64 {
                eprintln!("{}: … and {} more bad rows", args.file.display(), bad_rows - errors.len() as u64);
            }
            eprintln!("error: {} refused ({bad_rows} bad rows); nothing was imported", args.file.display());
            Ok(ExitCode::FAILURE)
        }
        Err(error) => Err(error).with_context(|| format!("importing {}", args.file.display())),
    }
}

async fn import_jurisdictions(args: ImportJurisdictionsArgs) -> anyhow::Result<ExitCode> {
    if !args.tolerance_m2.is_finite() || args.tolerance_m2 < 0.0 {
        anyhow::bail!("--tolerance-m2 must be a number ≥ 0");
    }
    let file = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let engine = open(&args.config).await?;
    let options = BoundaryImport {
        parent: args.parent,
        tolerance_m2: args.tolerance_m2,
        ..BoundaryImport::new(args.level, args.crs)
    };
    let result = engine.import_boundaries(&terminal_caller(), &file, &options).await;
    engine.shutdown().await;
    match result {
        Ok(summary) => {
            print_line(&format!(
                "{}: {} {} boundaries added, {} updated ({} vertices, {})",
                args.file.display(),
                summary.added,
                summary.level,
                summary.updated,
                summary.vertices,
                args.crs.as_str()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(EngineError::Boundaries(faults)) => {
            report_refusal(&args.file, &faults);
            Ok(ExitCode::FAILURE)
        }
        Err(error) => Err(error).with_context(|| format!("importing {}", args.file.display())),
    }
}

/// Every fault on its own line, then the verdict.
fn report_refusal(file: &std::path::Path, faults: &[fangkong_engine::BoundaryFault]) {
    for fault in faults {
        eprintln!("{}: {fault}", file.display());
    }
    eprintln!("error: {} refused ({} problems); nothing was imported", file.display(), faults.len());
}
