//! Builds the browser console (`web/`, TypeScript + Vite) and embeds its files into the
//! binary, so that `fangkong serve` works on a network with nothing else on it.
//!
//! - `FANGKONG_WEB_DIST=DIR` embeds an already built console from DIR (nothing is built);
//! - otherwise, with Node.js present, `npm ci` (when `web/node_modules` is missing) and
//!   `npm run build` write the console into `OUT_DIR`;
//! - without Node.js the server is built without a console (its `/` says how to build it),
//!   except under `CI=true`, where that is an error.
//!
//! The generated `web_assets.rs` holds `ASSETS: &[(path, bytes, content type)]`.

#![allow(clippy::print_stdout, reason = "cargo reads a build script's instructions from its stdout")]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let web = manifest.join("../../web").canonicalize().unwrap_or_else(|_| manifest.join("../../web"));
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=FANGKONG_WEB_DIST");
    println!("cargo:rerun-if-env-changed=CI");
    // Only paths that exist: cargo counts a watched path that is missing as changed, and
    // reruns the script (npm and all) on every build.
    for watched in
        ["src", "index.html", "public", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json"]
    {
        let path = web.join(watched);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let dist = match std::env::var_os("FANGKONG_WEB_DIST") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => build(&web, &out.join("web"), ci),
    };
    let mut files = Vec::new();
    if let Some(dist) = &dist {
        // A console built elsewhere is watched for changes; one built here is an output.
        collect(dist, dist, &mut files, std::env::var_os("FANGKONG_WEB_DIST").is_some());
        assert!(
            files.iter().any(|(name, _)| name == "index.html"),
            "the console in {} has no index.html",
            dist.display()
        );
    }
    files.sort();
    let mut code = String::from(
        "/// The console's files: path, bytes, content type.\npub static ASSETS: &[(&str, &[u8], &str)] = &[\n",
    );
    for (name, path) in &files {
        writeln!(code, "    ({name:?}, include_bytes!({:?}), {:?}),", path.display().to_string(), content_type(name))
            .unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out.join("web_assets.rs"), code).unwrap();
}

/// Runs the console's build; `None` when Node.js is not installed (and this is not CI).
fn build(web: &Path, into: &Path, ci: bool) -> Option<PathBuf> {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new(npm).arg("--version").output().is_err() {
        assert!(!ci, "CI=true but npm is not installed: the console cannot be built");
        println!("cargo:warning=Node.js (npm) is not installed: building without the browser console");
        return None;
    }
    if !web.join("node_modules").exists() {
        run(Command::new(npm).args(["ci", "--no-audit", "--no-fund"]).current_dir(web), "npm ci");
    }
    let into_arg = into.display().to_string();
    run(
        Command::new(npm).args(["run", "build", "--", "--outDir", &into_arg, "--emptyOutDir"]).current_dir(web),
        "npm run build",
    );
    Some(into.to_path_buf())
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    if !output.status.success() {
        panic!(
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>, watch: bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files, watch);
        } else {
            let name = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            if watch {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            files.push((name, path));
        }
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "geojson" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}
