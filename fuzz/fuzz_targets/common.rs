//! The path every target feeds its input through: open, load in f32, tokenizer, a few
//! tokens forward. Errors are fine; a panic or an abort is the bug libFuzzer reports.

#![allow(dead_code)]

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use llmdrop::{DropPlan, Logits, ModelSource, NoProbe};

pub fn open_and_run(path: &Path) {
    let Ok(src) = ModelSource::open(path) else {
        return;
    };
    if let Ok(dec) = src.load_decoder(&DropPlan::empty(), DType::F32, &Device::Cpu) {
        let ids = src
            .tokenizer()
            .and_then(|t| t.encode("Hello world 12"))
            .unwrap_or_default();
        let ids: Vec<u32> = ids.into_iter().take(4).chain([0]).collect();
        if let Ok(t) = Tensor::new(ids.as_slice(), &Device::Cpu).and_then(|t| t.unsqueeze(0)) {
            let _ = dec.forward(&t, None, &mut NoProbe, Logits::Last);
        }
    }
}

/// The tiny llama checkpoint of the test fixtures.
pub fn tiny_llama() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny/llama")
}
