//! What the elementwise ops on two f32 tensors share: taking their inputs, and writing
//! the output in parts across rayon's pool.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, Layout, Result};
use rayon::prelude::*;

/// Below this many values an elementwise op runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;

/// The values of two f32 tensors of one shape, both contiguous; `what` names the op in
/// the error otherwise.
pub(crate) fn same_shape_f32<'a>(
    what: &str,
    (sx, lx): (&'a CpuStorage, &Layout),
    (sy, ly): (&'a CpuStorage, &Layout),
) -> Result<(&'a [f32], &'a [f32])> {
    let (CpuStorage::F32(x), CpuStorage::F32(y)) = (sx, sy) else {
        candle_core::bail!("{what} needs f32 inputs")
    };
    let (Some((x0, x1)), Some((y0, y1))) = (lx.contiguous_offsets(), ly.contiguous_offsets())
    else {
        candle_core::bail!("{what} needs contiguous inputs")
    };
    if lx.shape() != ly.shape() {
        candle_core::bail!("{what}: shapes {:?} and {:?}", lx.dims(), ly.dims())
    }
    Ok((&x[x0..x1], &y[y0..y1]))
}

/// A fresh vector as long as `x` and `y` (asserted equal), written by `part` on equal
/// parts of the three: one part per thread of rayon's pool from [`PARALLEL_MIN`] values
/// (whole 16-value vectors each), else one part on this thread. The output is never
/// zeroed first.
///
/// # Safety
/// `part` must write every value of the room it is handed.
pub(crate) unsafe fn zip_parts(
    x: &[f32],
    y: &[f32],
    part: impl Fn(&[f32], &[f32], &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    assert_eq!(x.len(), y.len(), "elementwise: input lengths differ");
    let threads = rayon::current_num_threads();
    let fill = |out: &mut [MaybeUninit<f32>]| {
        if x.len() >= PARALLEL_MIN && threads > 1 {
            let chunk = x.len().div_ceil(threads).next_multiple_of(16);
            out.par_chunks_mut(chunk)
                .zip(x.par_chunks(chunk).zip(y.par_chunks(chunk)))
                .for_each(|(o, (x, y))| part(x, y, o));
        } else {
            part(x, y, out);
        }
    };
    // SAFETY: the parts cover the output (equal chunks of x, y and the output, all the
    // same length), and `part` writes every value of each (the caller's contract)
    unsafe { crate::written::written(x.len(), fill) }
}
