//! libFuzzer target: the input is the JSON header of a safetensors file. The file written
//! is its length, the header and the tiny llama fixture's tensor data, in a directory with
//! the fixture's config.json and tokenizer.json; it is opened, loaded, tokenized and run
//! as `llmdrop` does (`ModelSource::open` + `load_decoder` + tokenizer).
//!
//! Needs cargo-fuzz (`cargo install cargo-fuzz`) and nightly, or stable with
//! `RUSTC_BOOTSTRAP=1`. From the repository root, seeded with the fixture's own header:
//!
//! ```sh
//! mkdir -p fuzz/corpus/open_safetensors_header
//! python3 -c "import struct,sys; b=open('tests/fixtures/tiny/llama/model.safetensors','rb').read(); n=struct.unpack('<Q',b[:8])[0]; sys.stdout.buffer.write(b[8:8+n])" > fuzz/corpus/open_safetensors_header/llama
//! cd fuzz && RAYON_NUM_THREADS=1 RUSTC_BOOTSTRAP=1 cargo fuzz run open_safetensors_header \
//!     corpus/open_safetensors_header -- -max_len=65536 -rss_limit_mb=512 -timeout=20
//! ```
//!
//! The seeded, bounded version of this runs in the test suite:
//! `cargo test -p llmdrop --test fuzz_hf`.

#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// The fixture's tensor data (everything after its header).
fn fixture_data() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| {
        let b = std::fs::read(common::tiny_llama().join("model.safetensors")).expect("fixture");
        let n = u64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as usize;
        b[8 + n..].to_vec()
    })
}

fuzz_target!(|header: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(common::tiny_llama().join(f), dir.path().join(f)).expect("copy fixture");
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(fixture_data());
    std::fs::write(dir.path().join("model.safetensors"), file).expect("write input");
    common::open_and_run(dir.path());
});
