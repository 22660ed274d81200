//! One decoder layer: an optional attention and an optional MLP, each with its norms.

use candle_core::Tensor;

use super::attention::Attention;
use super::mlp::Mlp;
use super::norm::RmsNorm;
use crate::error::Result;

/// One decoder layer. A dropped module is `None`, together with its norms.
#[derive(Debug, Clone)]
pub struct Layer {
    pub attn: Option<Branch<Attention>>,
    pub mlp: Option<Branch<Mlp>>,
}

/// A module with its norms: `post(module(pre(x)))` is what is added to the residual.
#[derive(Debug, Clone)]
pub struct Branch<M> {
    pub pre: RmsNorm,
    pub module: M,
    /// The sandwich post-norm (Gemma), None for pre-norm families.
    pub post: Option<RmsNorm>,
}

impl<M> Branch<M> {
    /// The module's output as added to the residual: post-normed when there is a post-norm.
    pub(crate) fn finish(&self, y: Tensor) -> Result<Tensor> {
        match &self.post {
            Some(n) => n.forward(&y),
            None => Ok(y),
        }
    }

    pub(crate) fn norm_bytes(&self) -> usize {
        let t = |x: &Tensor| x.elem_count() * x.dtype().size_in_bytes();
        t(&self.pre.weight) + self.post.as_ref().map_or(0, |n| t(&n.weight))
    }
}
