//! Replays every fuzz target's seed corpus (`fuzz/corpus/<target>/`) and every
//! crash found so far (`fuzz/regressions/<target>/`) through the same harness
//! the fuzz target runs, so `cargo test` at the repository root keeps them
//! all green. A target missing from [`TARGETS`], or one without seeds, fails.

use std::path::{Path, PathBuf};

use resilient_ws_testkit as harness;

type Harness = fn(&[u8]);

/// Every fuzz target (`fuzz/fuzz_targets/<name>.rs`) and its harness.
const TARGETS: &[(&str, Harness)] = &[
    ("okx_book", harness::okx_book),
    ("decimal", harness::decimal),
    ("okx_classify", harness::okx_classify),
    ("weex_classify", harness::weex_classify),
    ("envelope_scan", harness::envelope_scan),
    ("frame_read", harness::frame_read),
    ("kalshi_classify", harness::kalshi_classify),
    ("kraken_classify", harness::kraken_classify),
    ("kraken_book", harness::kraken_book),
    ("kalshi_book", harness::kalshi_book),
    ("session_script", harness::session_script),
    ("weex_book", harness::weex_book),
    ("reconnect_script", harness::reconnect_script),
    ("venue_time", harness::venue_time),
    ("ws_bridge", harness::ws_bridge),
    ("scan_skip", harness::scan_skip),
];

/// The repository's `fuzz/` directory.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ sits in the repository root")
        .join("fuzz")
}

/// The files of `dir`, sorted, without hidden ones (libFuzzer's temporaries).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Runs every file under `fuzz/<kind>/<target>/` through its harness; returns
/// how many files each target had.
fn replay(kind: &str) -> Vec<(&'static str, usize)> {
    let root = fuzz_dir().join(kind);
    let mut failed = Vec::new();
    let mut counts = Vec::new();
    for &(target, harness) in TARGETS {
        let inputs = files(&root.join(target));
        for file in &inputs {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if std::panic::catch_unwind(|| harness(&data)).is_err() {
                failed.push(file.display().to_string());
            }
        }
        counts.push((target, inputs.len()));
    }
    assert!(failed.is_empty(), "harnesses failed on {failed:#?}");
    counts
}

#[test]
fn every_target_is_listed() {
    let targets = files(&fuzz_dir().join("fuzz_targets"));
    let mut names: Vec<String> = targets
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    let mut listed: Vec<&str> = TARGETS.iter().map(|&(name, _)| name).collect();
    listed.sort_unstable();
    assert_eq!(names, listed, "fuzz/fuzz_targets/ and TARGETS differ");
}

#[test]
fn the_seed_corpus_replays_cleanly() {
    for (target, seeds) in replay("corpus") {
        assert!(seeds > 0, "no seeds in fuzz/corpus/{target}/");
    }
}

#[test]
fn every_regression_replays_cleanly() {
    replay("regressions");
}

#[test]
fn empty_and_tiny_inputs_are_fine() {
    for &(_, harness) in TARGETS {
        harness(&[]);
        harness(&[0]);
        harness(&[0xff; 7]);
    }
}
