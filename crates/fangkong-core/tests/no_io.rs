//! The core's defining absence: it depends on no IO, clock or randomness crate, and its
//! source does not reach for the file system, the network, the clock or a random source.
//!
//! The dependency check asks `cargo tree` for the core's normal (non-dev, non-build)
//! dependencies with the features the core itself enables, so a forbidden crate reached
//! transitively is caught too. It runs offline: by the time tests run, `cargo` has resolved
//! and cached everything the workspace needs.

use std::path::Path;
use std::process::Command;

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

#[test]
fn core_depends_on_no_io_crate() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--edges", "normal", "--prefix", "none", "--manifest-path"])
        .arg(&manifest)
        .args(["--package", "fangkong-core"])
        .output()
        .expect("cargo tree runs");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8(output.stdout).unwrap();
    let names: Vec<&str> = tree.lines().filter_map(|line| line.split_whitespace().next()).collect();
    assert!(
        names.contains(&"thiserror") && names.contains(&"fangkong-geo"),
        "the tree lists known dependencies: {names:?}"
    );
    let mut forbidden: Vec<&str> = names.iter().copied().filter(|name| FORBIDDEN_CRATES.contains(name)).collect();
    forbidden.sort();
    forbidden.dedup();
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
