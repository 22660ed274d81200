//! libFuzzer target: the input is a GGUF file, written to a temp file and opened, loaded,
//! tokenized and run as `llmdrop` does (`ModelSource::open` + `load_decoder` + tokenizer).
//!
//! Needs cargo-fuzz (`cargo install cargo-fuzz`) and nightly, or stable with
//! `RUSTC_BOOTSTRAP=1` (stable ships the address sanitizer runtime). From the repository root:
//!
//! ```sh
//! mkdir -p fuzz/corpus/open_gguf
//! cp tests/fixtures/tiny/llama/model.gguf tests/fixtures/tiny/qwen2/model.gguf fuzz/corpus/open_gguf/
//! cd fuzz && RAYON_NUM_THREADS=1 RUSTC_BOOTSTRAP=1 cargo fuzz run open_gguf corpus/open_gguf -- \
//!     -max_len=1048576 -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=20
//! ```
//!
//! `-malloc_limit_mb=256` makes over-allocation a finding: llmdrop promises that no input
//! under 1 MB costs more than 256 MiB. (The RSS limit is higher: libFuzzer keeps its corpus of
//! inputs up to ~600 KB in memory, and the sanitizer's quarantine adds ~200 MB.) The seeded, bounded version of this runs in the test
//! suite: `cargo test -p llmdrop --test fuzz_gguf`.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, data).expect("write input");
    common::open_and_run(&path);
});
