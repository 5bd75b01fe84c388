//! `fangkong import jurisdictions FILE`: official boundaries into the tree, checked feature by
//! feature and stored all or nothing, acting as the system and audited under the
//! operating-system user's name (like the account commands).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use fangkong_core::jurisdiction::JurisdictionKind;
use fangkong_engine::boundaries::DEFAULT_TOLERANCE_M2;
use fangkong_engine::{BoundaryImport, EngineError};
use fangkong_geo::Crs;

use crate::accounts::{open, terminal_caller};
use crate::print_line;

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Import boundaries (a GeoJSON FeatureCollection) at one level of the tree.
    Jurisdictions(ImportJurisdictionsArgs),
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
    let ImportCommand::Jurisdictions(args) = command;
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
