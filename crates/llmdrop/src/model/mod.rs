//! The generic decoder and its parts.

pub mod attention;
mod attn_inputs;
pub mod cache;
pub mod decode_attn;
pub mod decoder;
pub mod linear;
pub mod mlp;
pub mod norm;
pub mod prefill_attn;
pub mod product_op;
pub mod rope;
pub mod vexp;
pub mod weights;

pub use cache::KvCache;
pub use decoder::{Decoder, Layer, Logits, Outputs};
