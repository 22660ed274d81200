//! [`Probe`]: how callers observe the residual stream without the decoder knowing why.

use candle_core::Tensor;

use crate::error::Result;

/// Where in layer `i` a hidden state was observed (DESIGN §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Site {
    /// X: the layer's input.
    Input,
    /// Y = X + Attn(LN1(X)) (equals X when attention is dropped); with sandwich norms
    /// (Gemma) Y = X + post_attn_norm(Attn(LN1(X))).
    AfterAttn,
    /// Z = Y + MLP(LN2(Y)) (with sandwich norms: Y + post_ffw_norm(MLP(LN2(Y)))): the
    /// layer's output.
    AfterMlp,
    /// LN1(X), the attention's input (only when [`Probe::wants_branches`]).
    AttnIn,
    /// Attn(LN1(X)) as added to the residual (post-normed when the family has a post-norm).
    AttnOut,
    /// LN2(Y), the MLP's input.
    MlpIn,
    /// MLP(LN2(Y)) as added to the residual (post-normed when the family has a post-norm).
    MlpOut,
}

/// Observer the decoder calls at every site of every layer, in order.
/// `h` is `[batch, seq, hidden]` in the compute dtype.
pub trait Probe: Send {
    fn observe(&mut self, layer: usize, site: Site, h: &Tensor) -> Result<()>;
    /// Whether the branch sites (AttnIn, AttnOut, MlpIn, MlpOut) are wanted too.
    fn wants_branches(&self) -> bool {
        false
    }
}

/// The probe that observes nothing.
pub struct NoProbe;

impl Probe for NoProbe {
    #[inline]
    fn observe(&mut self, _: usize, _: Site, _: &Tensor) -> Result<()> {
        Ok(())
    }
}
