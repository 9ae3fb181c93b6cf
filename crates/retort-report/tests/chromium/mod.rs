//! Headless Chromium for the report's browser tests: finds the binary and runs it on a
//! page with a deadline.
//!
//! Needs Chromium (`apt-get install chromium`, or `scripts/system-deps.sh`); set
//! `RETORT_CHROMIUM` to use another binary.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("RETORT_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "headless Chromium is required for the report browser test and was not found on PATH \
         (tried chromium, chromium-browser, google-chrome). Install it with \
         `apt-get install chromium`, or point RETORT_CHROMIUM at a Chromium binary."
    );
}

/// Runs Chromium headless on `page` with extra `args`, failing the test after a deadline
/// rather than hanging CI.
pub fn run_chromium(page: &Path, args: &[String]) -> Output {
    run_chromium_at(page, "", args)
}

/// [`run_chromium`] on `page` with `fragment` (e.g. `#records?cat=3`) appended to its
/// `file://` URL.
pub fn run_chromium_at(page: &Path, fragment: &str, args: &[String]) -> Output {
    let profile = tempfile::tempdir().expect("temp profile dir");
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        // Belt and braces: the page must not fetch anything, so no host resolves.
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(format!("file://{}{fragment}", page.display()))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "could not start {:?}: {e} (install it with `apt-get install chromium`)",
            chromium()
        )
    });
    // Drain pipes on threads so a chatty Chromium cannot block on a full pipe.
    let mut so = child.stdout.take().expect("stdout piped");
    let mut se = child.stderr.take().expect("stderr piped");
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut so, &mut b).map(|_| b)
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut se, &mut b).map(|_| b)
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        match child.try_wait().expect("wait for chromium") {
            Some(s) => break s,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 180 s");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let stdout = out_t.join().expect("stdout thread").expect("read stdout");
    let stderr = err_t.join().expect("stderr thread").expect("read stderr");
    assert!(
        status.success(),
        "chromium exited with {status}; stderr:\n{}",
        String::from_utf8_lossy(&stderr)
    );
    Output {
        status,
        stdout,
        stderr,
    }
}
