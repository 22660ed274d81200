//! The kernels' one error type: a matrix the quantized layout cannot hold or read, or
//! data that does not fit the shape it is given for (the bf16 matrix and its product).
//!
//! The candle ops ([`attention`](crate::attention), [`vexp::silu_mul`](crate::vexp::silu_mul))
//! fail with candle's own error; everything else here panics on a caller bug (see each
//! function's `# Panics`) instead of returning one.

use candle_core::quantized::GgmlDType;

use crate::quant::BLOCK;

/// Why a [`QMatrix`](crate::quant::QMatrix) or a [`Bf16Matrix`](crate::gemm::bf16::Bf16Matrix)
/// could not be built, or a bf16 product not run. Each variant names the shape, the value
/// or the block at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The shape has no rows, or columns that are no multiple of [`BLOCK`].
    #[error(
        "a [{rows}, {cols}] matrix cannot be quantized: needs rows > 0 and columns a multiple of {BLOCK}"
    )]
    Shape { rows: usize, cols: usize },
    /// `values` f32 values given for a `[rows, cols]` matrix.
    #[error("{values} values for a [{rows}, {cols}] matrix")]
    Length {
        values: usize,
        rows: usize,
        cols: usize,
    },
    /// `values` input values for a product with a matrix of `cols` columns: no whole
    /// number of rows.
    #[error("{values} input values are no whole number of rows of {cols} (the matrix's columns)")]
    Width { values: usize, cols: usize },
    /// A NaN or infinite value to quantize.
    #[error("cannot quantize: value {value} at row {row}, column {col} is not finite")]
    NonFinite { value: f32, row: usize, col: usize },
    /// GGUF-encoded data of `bytes` bytes where the shape needs `expected`.
    #[error(
        "{ggml_type:?} data of {bytes} bytes for a [{rows}, {cols}] matrix (expected {expected})"
    )]
    GgmlLength {
        ggml_type: GgmlDType,
        bytes: usize,
        rows: usize,
        cols: usize,
        expected: usize,
    },
    /// A GGUF block whose scale `d` or offset `m` is NaN or infinite.
    #[error(
        "{ggml_type:?} block {block} of row {row} (columns {}..{}) has a non-finite scale or offset (d = {d}, m = {m})",
        .block * BLOCK,
        (.block + 1) * BLOCK
    )]
    NonFiniteScale {
        ggml_type: GgmlDType,
        row: usize,
        block: usize,
        d: f32,
        m: f32,
    },
}

/// A kernel result: [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;
