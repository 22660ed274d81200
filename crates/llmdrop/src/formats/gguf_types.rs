//! The GGUF type each tensor of a float (safetensors) model is stored as when exported to
//! GGUF: vectors (norms, biases) f32 as llama.cpp's converter keeps them, matrices the type
//! asked for (default f16), a K-quant falling back as llama.cpp's quantizer does for rows
//! that are not whole 256-element super-blocks. The GGUF writer stores tensors so, and the
//! export's reload check quantizes the source so in memory ([`crate::io`]'s requantized
//! view) to compare the file with exactly what it should hold.

use candle_core::quantized::GgmlDType;

/// The type llama.cpp's quantizer falls back to for a K-quant when a row is not a whole
/// number of 256-element super-blocks (SmolLM2's 576-wide matrices): the 32-element type
/// of about the same size.
pub fn fallback_for_width(dt: GgmlDType, cols: usize) -> GgmlDType {
    if cols.is_multiple_of(dt.block_size()) {
        return dt;
    }
    match dt {
        GgmlDType::Q2K | GgmlDType::Q3K => GgmlDType::Q4_0,
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        other => other,
    }
}

/// The type a tensor of `shape` is stored as, `quant` asked for (None: f16).
pub fn stored_type(shape: &[usize], quant: Option<GgmlDType>) -> GgmlDType {
    match shape {
        [] | [_] => GgmlDType::F32,
        [.., cols] => fallback_for_width(quant.unwrap_or(GgmlDType::F16), *cols),
    }
}

/// Whether a GGUF export of a float model with `quant` stores weights exactly (f32), or
/// rounds them (f16 and the quantized types).
pub fn exact(quant: Option<GgmlDType>) -> bool {
    quant == Some(GgmlDType::F32)
}
