//! One decoder layer: an optional attention and an optional MLP, each with its norms.

use candle_core::Tensor;

use super::attention::Attention;
use super::mlp::Mlp;
use super::norm::RmsNorm;
use super::weights::Weights;
use crate::config::Config;
use crate::error::Result;
use crate::plan::DropPlan;

/// One decoder layer. A dropped module is `None`, together with its norms.
#[derive(Debug, Clone)]
pub struct Layer {
    pub attn: Option<Branch<Attention>>,
    pub mlp: Option<Branch<Mlp>>,
}

impl Layer {
    /// Loads layer `i` from `w`: the modules `plan` drops are never read.
    pub(crate) fn load(w: &Weights, cfg: &Config, plan: &DropPlan, i: usize) -> Result<Self> {
        let (h, eps, norms) = (cfg.hidden_size, cfg.rms_norm_eps, cfg.arch.norms);
        let norm = |name: &str| -> Result<RmsNorm> {
            RmsNorm::load(w, &format!("model.layers.{i}.{name}"), h, eps)
        };
        let post = |name: Option<(&str, &str)>| -> Result<Option<RmsNorm>> {
            name.map(|(n, _)| norm(n)).transpose()
        };
        let attn = match plan.drops_attn(i) {
            true => None,
            false => Some(Branch {
                pre: norm(norms.attn_pre.0)?,
                module: Attention::load(w, cfg, i)?,
                post: post(norms.attn_post)?,
            }),
        };
        let mlp = match plan.drops_mlp(i) {
            true => None,
            false => Some(Branch {
                pre: norm(norms.mlp_pre.0)?,
                module: Mlp::load(w, cfg, &format!("model.layers.{i}.mlp"))?,
                post: post(norms.mlp_post)?,
            }),
        };
        Ok(Layer { attn, mlp })
    }
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
