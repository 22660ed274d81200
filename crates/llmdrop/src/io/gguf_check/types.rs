//! GGUF's type ids: metadata value types and the tensor types candle reads, and what
//! candle's parsed form of each costs.

use candle_core::quantized::gguf_file::{TensorInfo, Value};
use candle_core::quantized::GgmlDType;

/// GGUF metadata value types, by their id in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    Str,
    Array,
    U64,
    I64,
    F64,
}

impl Ty {
    pub(super) fn of(id: u32) -> Option<Ty> {
        use Ty::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => Str,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Bytes of a value of this type in the file (for strings and arrays: their minimum).
    pub(super) fn min_size(self) -> u64 {
        use Ty::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | Str => 8,
            Array => 12,
        }
    }
}

/// The ggml tensor types candle reads, by their id in the file.
pub(crate) fn ggml_type(id: u32) -> Option<GgmlDType> {
    use GgmlDType::*;
    Some(match id {
        0 => F32,
        1 => F16,
        2 => Q4_0,
        3 => Q4_1,
        6 => Q5_0,
        7 => Q5_1,
        8 => Q8_0,
        9 => Q8_1,
        10 => Q2K,
        11 => Q3K,
        12 => Q4K,
        13 => Q5K,
        14 => Q6K,
        15 => Q8K,
        30 => BF16,
        _ => return None,
    })
}

pub(super) const VALUE_SIZE: u64 = std::mem::size_of::<Value>() as u64;
pub(super) const TENSOR_INFO_SIZE: u64 = std::mem::size_of::<TensorInfo>() as u64;
