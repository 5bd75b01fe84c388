//! The core's defining absence: it depends on no IO, clock or randomness crate, and its
//! source does not reach for the file system, the network, the clock or a random source.
//!
//! The dependency check starts from the normal `[dependencies]` of the core's manifest
//! (and of workspace crates it uses) and follows `Cargo.lock`, which lists every
//! dependency a locked package may pull in, so a forbidden crate reached transitively is
//! caught too. It reads files only: no network, no `cargo` call.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Crates whose presence means the core could do IO, read the clock or draw randomness.
const FORBIDDEN_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "async-std",
    "smol",
    "futures-executor",
    "hyper",
    "axum",
    "tower",
    "reqwest",
    "sqlx",
    "rusqlite",
    "libsqlite3-sys",
    "tokio-postgres",
    "postgres",
    "deadpool",
    "deadpool-postgres",
    "rumqttc",
    "async-nats",
    "rand",
    "rand_core",
    "getrandom",
    "fastrand",
    "chrono",
    "tracing-subscriber",
];

/// Source patterns that mean IO, the wall clock or randomness.
const FORBIDDEN_SOURCE: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "std::io::stdin",
    "SystemTime",
    "Instant::now",
    "thread_rng",
    "std::thread",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Names in the `[dependencies]` table of a workspace crate's manifest (not dev/build).
fn normal_dependencies(crate_name: &str) -> Vec<String> {
    let manifest = read_toml(&workspace_root().join("crates").join(crate_name).join("Cargo.toml"));
    manifest.get("dependencies").and_then(|d| d.as_table()).map(|d| d.keys().cloned().collect()).unwrap_or_default()
}

#[test]
fn core_depends_on_no_io_crate() {
    let lock = read_toml(&workspace_root().join("Cargo.lock"));
    let packages = lock["package"].as_array().unwrap();
    let locked_dependencies = |name: &str| -> Vec<String> {
        packages
            .iter()
            .filter(|p| p["name"].as_str() == Some(name))
            .flat_map(|p| p.get("dependencies").and_then(|d| d.as_array()).cloned().unwrap_or_default())
            .map(|d| d.as_str().unwrap().split(' ').next().unwrap().to_string())
            .collect()
    };

    let mut seen = BTreeSet::new();
    let mut stack = normal_dependencies("fangkong-core");
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if name.starts_with("fangkong-") {
            stack.extend(normal_dependencies(&name));
        } else {
            stack.extend(locked_dependencies(&name));
        }
    }
    assert!(seen.contains("thiserror") && seen.contains("fangkong-geo"), "the walk found known dependencies: {seen:?}");
    let forbidden: Vec<_> = seen.iter().filter(|name| FORBIDDEN_CRATES.contains(&name.as_str())).collect();
    assert!(forbidden.is_empty(), "fangkong-core must stay pure, but depends on {forbidden:?}");
}

#[test]
fn core_source_reaches_for_no_io_clock_or_randomness() {
    let mut offences = Vec::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![src];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().unwrap() != "tests.rs" {
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    for pattern in FORBIDDEN_SOURCE {
                        if line.contains(pattern) && !line.trim_start().starts_with("//") {
                            offences.push(format!("{}:{}: {pattern}", path.display(), n + 1));
                        }
                    }
                }
            }
        }
    }
    assert!(offences.is_empty(), "the core must not do IO, read clocks or draw randomness:\n{}", offences.join("\n"));
}
