//! The browser console's end-to-end suite (`web/e2e/console.mjs`), run by `cargo test`:
//! Debian's Chromium, driven by playwright-core, against this build's `fangkong demo`.
//! Without Node.js, the console's packages or Chromium the test says it did not run and
//! passes — except under `CI=true`, where that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

/// Why the suite cannot run here, if it cannot.
fn missing() -> Option<String> {
    if Command::new("node").arg("--version").output().is_err() {
        return Some("Node.js is not installed".into());
    }
    if !web().join("node_modules/playwright-core").exists() {
        return Some("web/node_modules is missing (npm ci in web/)".into());
    }
    let chromium = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().map(PathBuf::from).find(|p| p.exists())
    });
    if chromium.is_none() {
        return Some("Chromium is not installed (apt-get install chromium)".into());
    }
    None
}

#[test]
fn the_console_works_end_to_end_in_a_real_browser() {
    if let Some(why) = missing() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: the console's end-to-end suite cannot run: {why}"
        );
        eprintln!("note: {why}; the console's end-to-end test did not run");
        return;
    }
    let output = Command::new("node")
        .arg("e2e/console.mjs")
        .current_dir(web())
        .env("FANGKONG_BIN", env!("CARGO_BIN_EXE_fangkong"))
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the console's end-to-end suite failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("e2e: all passed"), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
}
