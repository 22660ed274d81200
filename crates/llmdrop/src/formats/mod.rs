//! On-disk formats, both directions: for each format llmdrop writes, the keys and values it
//! writes and how a reader recovers the model's shape and drop plan from them.
//!
//! The writers ([`crate::export`]) and the readers ([`crate::config`], [`crate::io`]) both
//! take a format's meaning from here; this module imports neither, so reading and writing
//! cannot drift apart and no import runs back up from the readers to the writers.
//!
//! - [`hf_llmdrop`]: LLM-Drop's `drop_attn_list` / `drop_mlp_list` in config.json (the plain
//!   `hf` format is the same directory with these keys removed and the layers renumbered).
//! - [`nemotron`]: `nemotron-nas` (DeciLM) `block_configs`.
//! - [`deci_gguf`]: GGUF arch `deci`, per-layer head counts and FFN lengths, and llmdrop's
//!   own metadata beside them.
//! - [`gguf_types`]: the GGUF type each tensor of a float model is stored as.

pub mod deci_gguf;
pub mod gguf_types;
pub mod hf_llmdrop;
pub mod nemotron;
