//! The generic decoder and its parts.

pub(crate) mod attention;
pub(crate) mod cache;
pub(crate) mod decode_step;
pub(crate) mod decoder;
pub(crate) mod frame;
pub(crate) mod head;
pub(crate) mod head_slices;
mod layer;
pub(crate) mod linear;
mod load;
pub(crate) mod matrix;
pub(crate) mod mlp;
pub(crate) mod norm;
pub(crate) mod product_op;
pub(crate) mod rope;
pub(crate) mod stream;
pub(crate) mod weights;

pub use cache::KvCache;
pub use decoder::{Decoder, Logits, Outputs};
pub use head::OutputHead;
pub use head_slices::{can_slice, HeadSlice, HeadSlices};
pub use stream::{LayerHook, LayerStream};
