//! Loading a decoder from an opened model: here rather than in `io`, so that `io` (which
//! reads files) does not depend on `model` (which builds from what `io` reads).

use super::{Decoder, Outputs};
use crate::error::Result;
use crate::io::source::ModelSource;
use crate::plan::DropPlan;
use crate::quant::Precision;

impl ModelSource {
    /// Loads the decoder with `plan` plus whatever the files say is already dropped.
    pub fn load_decoder(
        &self,
        plan: &DropPlan,
        precision: impl Into<Precision>,
        device: &candle_core::Device,
    ) -> Result<Decoder> {
        self.load_decoder_for(plan, precision, device, Outputs::Logits)
    }

    /// As [`ModelSource::load_decoder`], for what `outputs` asks (scoring needs only hidden
    /// states, and holds less).
    pub fn load_decoder_for(
        &self,
        plan: &DropPlan,
        precision: impl Into<Precision>,
        device: &candle_core::Device,
        outputs: Outputs,
    ) -> Result<Decoder> {
        let plan = plan.union(self.stored_plan());
        Decoder::load_for(
            self.weights(),
            self.config(),
            &plan,
            precision,
            device,
            outputs,
        )
    }
}
