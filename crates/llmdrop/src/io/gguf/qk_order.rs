//! The q/k row order of GGUF files: llama.cpp interleaves the RoPE halves of each head.

use candle_core::Tensor;

/// llama.cpp's converter reorders each head's q/k rows from HF's half-split RoPE layout
/// `[x0..x(d/2), y0..y(d/2)]` to the interleaved `[x0, y0, x1, y1, …]`. Undo it.
/// `t` is `[heads * head_dim, …]` (weight) or `[heads * head_dim]` (bias).
pub fn unpermute_qk(t: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    reorder_qk(t, heads, true)
}

/// The converter's permutation: HF layout -> interleaved GGUF layout.
pub fn permute_qk(t: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    reorder_qk(t, heads, false)
}

fn reorder_qk(t: &Tensor, heads: usize, inverse: bool) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let Some((&rows, rest)) = dims.split_first() else {
        candle_core::bail!("a scalar has no rows to split into {heads} heads")
    };
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        candle_core::bail!("{rows} rows do not split into {heads} heads of even size")
    }
    let half = rows / heads / 2;
    let mut shape = vec![heads];
    // HF layout is [heads, 2, half, …]; GGUF is [heads, half, 2, …].
    if inverse {
        shape.extend([half, 2]);
    } else {
        shape.extend([2, half]);
    }
    shape.extend(rest);
    t.reshape(shape)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}
