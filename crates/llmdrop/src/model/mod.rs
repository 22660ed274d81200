//! The generic decoder and its parts.

pub mod attention;
pub mod cache;
pub mod decoder;
pub mod linear;
mod load;
pub mod mlp;
pub mod norm;
pub mod product_op;
pub mod rope;
pub mod weights;

pub use cache::KvCache;
pub use decoder::{Decoder, Layer, Logits, Outputs};
