//! Calibration data: text sources -> documents -> packed token blocks, with a content hash.

pub(crate) mod pack;
pub(crate) mod source;

pub use pack::{pack, CalibBlocks, PackOptions};
pub use source::{read_documents, TextSource};
