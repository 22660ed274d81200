//! What an export's reload check holds in memory: both models in f32 with their heads
//! (the in-memory pruned model and the reloaded export, side by side), or, layer-streamed,
//! one layer or one output head and the probe's states and logits (a perplexity run of
//! one short window). Writing itself holds one tensor at a time and is not counted.

use super::ppl_need::PplNeed;
use super::Need;
use crate::io::source::ModelSource;

/// The reload check's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ExportNeed {
    /// One model run on the probe: held (`in_memory`) or layer-streamed.
    pub check: PplNeed,
    /// The models the check runs: 2, or 3 for a quantized export.
    pub models: u64,
}

impl ExportNeed {
    /// The estimate for checking an export of `src` on a probe of `probe_tokens` tokens
    /// (`unique_tokens` distinct ids), in f32, comparing `models` models.
    pub fn estimate(
        src: &ModelSource,
        probe_tokens: usize,
        unique_tokens: usize,
        models: u64,
    ) -> Self {
        let f32 = crate::quant::Precision::Float(candle_core::DType::F32);
        Self {
            check: PplNeed::estimate(src, f32, 1, 1, probe_tokens, unique_tokens, 1),
            models,
        }
    }
}

impl Need for ExportNeed {
    /// Every model held at once, one window's pass.
    fn in_memory(&self) -> u64 {
        self.check.in_memory() + (self.models.max(1) - 1) * self.check.model
    }
    /// The streamed runs come one after the other.
    fn streamed(&self) -> u64 {
        self.check.streamed()
    }
    fn spill(&self) -> u64 {
        0
    }
    fn spills(&self) -> bool {
        false
    }
    fn streamed_detail(&self) -> String {
        self.check.streamed_detail()
    }
}
