//! Writing pruned models. Every output is staged in a temporary directory next to its
//! destination and renamed into place; an input is never written to.

pub mod hf;
pub mod staging;

pub use hf::{write_hf_llmdrop, ExportInfo};
pub use staging::Staging;
