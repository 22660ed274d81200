//! What scoring holds in memory, estimated from the tensor directory and the calibration
//! settings before any weight is read: the model as loaded for scoring (in memory), or one
//! layer plus every calibration token's hidden states (layer-streamed, with the unit
//! hidden states of the consecutive-layer matrix spilled to disk).

use candle_core::DType;
use llmdrop_kernels::quant::{QKind, QMatrix};

use crate::io::names::split_layer_name;
use crate::io::source::ModelSource;
use crate::quant::{Precision, Stored};

/// The parts of scoring's memory, in bytes. The program itself (code, the allocator's
/// slack) is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ScoreNeed {
    /// The weights an in-memory scoring load holds (no output head).
    pub model: u64,
    /// The largest layer as held, plus what reading its largest tensor holds besides (its
    /// mapped pages, the stored copy and the converted one: twice its stored bytes and once
    /// as held) or, for f32 gate and up projections, the pair they are interleaved into.
    pub layer: u64,
    /// What reading the model's largest tensor holds besides the tensors already read
    /// (as in [`ScoreNeed::layer`]).
    pub load_extra: u64,
    /// The embedding rows of the calibration tokens, as held (layer-streamed).
    pub embed_rows: u64,
    /// The hidden states of one calibration block, with the probe's f32 copy.
    pub block_states: u64,
    /// One block's unit hidden states of every layer (the consecutive-layer matrix).
    pub block_units: u64,
    /// One block's unit hidden states of one layer (what a spilling block writes at once).
    pub layer_units: u64,
    /// What one block's pass through one layer allocates (projections, attention scores,
    /// the MLP's intermediate), per block running at once.
    pub block_working: u64,
    pub blocks: u64,
    /// Blocks that run at once.
    pub lanes: u64,
}

impl ScoreNeed {
    /// The estimate for scoring `src` at `precision` on `blocks` blocks of `seq_len` tokens
    /// (`unique_tokens` distinct ids), `lanes` blocks at once, with the consecutive-layer
    /// matrix when `consecutive`.
    pub fn estimate(
        src: &ModelSource,
        precision: Precision,
        blocks: usize,
        seq_len: usize,
        unique_tokens: usize,
        lanes: usize,
        consecutive: bool,
    ) -> Self {
        let c = src.config();
        let w = src.weights();
        let (t, h) = (seq_len as u64, c.hidden_size as u64);
        // per layer: bytes held, and the largest tensor's read overhead
        let mut layers = vec![(0u64, 0u64); c.num_layers];
        let mut gate_up = vec![0u64; c.num_layers];
        let mut model = 0u64;
        let mut load_extra = 0u64;
        let mut embed_row = 0u64;
        for meta in w.tensors() {
            let held = held_bytes(&meta.shape, meta.bytes, w.ggml_type(&meta.name), precision);
            // reading a tensor: its mapped pages, the stored copy and the converted one
            let read = |held: u64| 2 * meta.bytes + held;
            if let Some((i, rest)) = split_layer_name(&meta.name).filter(|(i, _)| *i < layers.len())
            {
                layers[i].0 += held;
                layers[i].1 = layers[i].1.max(read(held));
                // f32 gate and up projections are interleaved into one matrix: while it is
                // built, both and the pair exist
                let gated = matches!(rest, "mlp.gate_proj.weight" | "mlp.up_proj.weight");
                if gated && paired(&meta.shape, held, precision) {
                    gate_up[i] += held;
                }
                load_extra = load_extra.max(read(held));
                model += held;
            } else if meta.name == "model.embed_tokens.weight" {
                // f32 scoring keeps a GGUF table's blocks as stored where they repack
                let held = match (precision.compute_dtype(), w.ggml_type(&meta.name)) {
                    (DType::F32, Some(_)) => held.min(meta.bytes),
                    _ => held,
                };
                model += held;
                load_extra = load_extra.max(read(held));
                embed_row = held / (c.vocab_size.max(1) as u64);
            } else if meta.name != "lm_head.weight" {
                load_extra = load_extra.max(read(held));
                model += held;
            }
        }
        let dtype = precision.compute_dtype();
        let state = dtype.size_in_bytes() as u64 + if dtype == DType::F32 { 0 } else { 4 };
        let f = dtype.size_in_bytes() as u64;
        let (q, kv) = (
            (c.num_heads * c.head_dim) as u64,
            (c.num_kv_heads * c.head_dim) as u64,
        );
        let attn = t * (2 * q + 2 * kv + h) * f + c.num_heads as u64 * t * t * 4;
        let mlp = t * (3 * c.intermediate_size as u64 + h) * f;
        Self {
            model,
            layer: layers
                .iter()
                .zip(&gate_up)
                .map(|(&(held, read), &pair)| held + read.max(pair))
                .max()
                .unwrap_or(0),
            load_extra,
            embed_rows: embed_row * unique_tokens as u64,
            block_states: t * h * state,
            block_units: match consecutive {
                true => (c.num_layers as u64 + 1) * t * h * 4,
                false => 0,
            },
            layer_units: match consecutive {
                true => t * h * 4,
                false => 0,
            },
            block_working: attn.max(mlp) + 2 * t * h * f,
            blocks: blocks as u64,
            lanes: lanes.clamp(1, blocks.max(1)) as u64,
        }
    }

    /// Scoring with the model held: the weights (while loading, with the largest tensor's
    /// read overhead), and per running block its states, units and working memory.
    pub fn in_memory(&self) -> u64 {
        self.model
            + self
                .load_extra
                .max(self.lanes * (self.block_states + self.block_units + self.block_working))
    }

    /// Layer-streamed scoring with the unit hidden states spilled: while the layers run,
    /// one layer, the embedding rows, every block's states, and the running blocks'
    /// working memory and one layer of their units each (on their way to disk); after
    /// (the layers and states gone), one block's units of every layer, read back.
    pub fn streamed(&self) -> u64 {
        let running = self.layer
            + self.embed_rows
            + self.blocks * self.block_states
            + self.lanes * (self.block_working + self.layer_units);
        running.max(self.block_units)
    }

    /// The bytes layer-streamed scoring spills to disk: every block's unit hidden states
    /// of every layer.
    pub fn spill(&self) -> u64 {
        self.blocks * self.block_units
    }

    /// What [`ScoreNeed::streamed`] is made of, for people.
    pub fn streamed_detail(&self) -> String {
        use super::format_size as s;
        format!(
            "{}: one layer as it is read {}, embedding rows {}, hidden states of {} blocks {}, working memory of {} blocks at once {}, then, the layers and states gone, one block's unit hidden states of every layer read back for the consecutive-layer matrix {} (all blocks' {} spilled to disk)",
            s(self.streamed()),
            s(self.layer),
            s(self.embed_rows),
            self.blocks,
            s(self.blocks * self.block_states),
            self.lanes,
            s(self.lanes * (self.block_working + self.layer_units)),
            s(self.block_units),
            s(self.spill()),
        )
    }
}

/// Whether a gate or up projection of `shape` held in `held` bytes is an f32 matrix, which
/// the two are interleaved from (as packed f32 matrices; elsewhere this overcounts).
fn paired(shape: &[usize], held: u64, precision: Precision) -> bool {
    let elems: u64 = shape.iter().map(|&d| d as u64).product();
    shape.len() == 2 && precision.compute_dtype() == DType::F32 && held == elems * 4
}

/// Bytes a tensor of `shape` (stored in `stored_bytes`, of GGUF type `ggml`) takes as
/// loaded at `precision`: quantized kinds at their block sizes, blocks kept as stored at
/// their stored size, floats at the compute dtype's width.
pub(super) fn held_bytes(
    shape: &[usize],
    stored_bytes: u64,
    ggml: Option<candle_core::quantized::GgmlDType>,
    precision: Precision,
) -> u64 {
    held_bytes_as(shape, stored_bytes, ggml, precision, false)
}

/// [`held_bytes`] of a layer matrix or (`head`) the embedding / output projection, which
/// some modes hold in another kind.
pub(super) fn held_bytes_as(
    shape: &[usize],
    stored_bytes: u64,
    ggml: Option<candle_core::quantized::GgmlDType>,
    precision: Precision,
    head: bool,
) -> u64 {
    let elems: u64 = shape.iter().map(|&d| d as u64).product();
    let float = elems * precision.compute_dtype().size_in_bytes() as u64;
    let (Precision::Quant(mode), &[_, cols]) = (precision, shape) else {
        return float;
    };
    if mode == crate::quant::QuantMode::Bf16Mixed && !head {
        return elems * 2;
    }
    if !QMatrix::fits(cols) {
        return float;
    }
    let stored = ggml.map_or(Stored::Float, Stored::of);
    match mode.kind(stored, head) {
        None => float,
        Some(QKind::Q8) if stored == Stored::Q8 => stored_bytes,
        Some(QKind::Q4) if stored == Stored::Q4 => stored_bytes,
        Some(QKind::Q8) => elems * 34 / 32,
        Some(_) => elems * 20 / 32,
    }
}
