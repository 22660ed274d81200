//! `x + y` for f32 tensors of one shape (the residual stream's adds), split across
//! rayon's pool and written unzeroed: candle's CPU add runs on one thread when its own
//! spinning pool is off (as the CLI sets it), a serial step between parallel products.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Below this many values the add runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;

struct Add;

/// One task's share: room for its sums, and its values of `x` and `y`.
type Part<'a> = (&'a mut [MaybeUninit<f32>], (&'a [f32], &'a [f32]));

impl CustomOp2 for Add {
    fn name(&self) -> &'static str {
        "llmdrop-add"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sy: &CpuStorage,
        ly: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(y)) = (sx, sy) else {
            candle_core::bail!("add needs f32 inputs")
        };
        let (Some((x0, x1)), Some((y0, y1))) = (lx.contiguous_offsets(), ly.contiguous_offsets())
        else {
            candle_core::bail!("add needs contiguous inputs")
        };
        if lx.shape() != ly.shape() {
            candle_core::bail!("add: shapes {:?} and {:?}", lx.dims(), ly.dims())
        }
        let (x, y) = (&x[x0..x1], &y[y0..y1]);
        let sum = |(o, (x, y)): Part| {
            for ((o, &a), &b) in o.iter_mut().zip(x).zip(y) {
                o.write(a + b);
            }
        };
        let threads = rayon::current_num_threads();
        let fill = |out: &mut [MaybeUninit<f32>]| {
            if x.len() >= PARALLEL_MIN && threads > 1 {
                let chunk = x.len().div_ceil(threads).next_multiple_of(16);
                out.par_chunks_mut(chunk)
                    .zip(x.par_chunks(chunk).zip(y.par_chunks(chunk)))
                    .for_each(sum);
            } else {
                sum((out, (x, y)));
            }
        };
        // SAFETY: x, y and the output are the same length (same shape, contiguous), and
        // the chunks of the output, paired with equal chunks of x and y, cover it: `sum`
        // writes every value
        let out = unsafe { crate::written::written(x.len(), fill) };
        Ok((CpuStorage::F32(out), lx.shape().clone()))
    }
}

/// `x + y`: on the CPU for f32 tensors of one shape, split across rayon's threads; any
/// other case (dtype, broadcast shapes, device) is candle's own add. The same values
/// either way (one rounding per element).
pub fn add(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu();
    if !(f32_cpu(x) && f32_cpu(y) && x.shape() == y.shape()) {
        return x + y;
    }
    let x = if x.is_contiguous() {
        x.clone()
    } else {
        x.contiguous()?
    };
    let y = if y.is_contiguous() {
        y.clone()
    } else {
        y.contiguous()?
    };
    x.apply_op2_no_bwd(&y, &Add)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn equals_candles_add_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        // small (one thread) and large (split) inputs, a transposed (strided) one, and
        // f64, which falls back to candle
        for n in [7usize, 3 * PARALLEL_MIN + 5] {
            let x = Tensor::randn(0f32, 1.0, (n,), &dev)?;
            let y = (Tensor::randn(0f32, 1e-3, (n,), &dev)? * 1e4)?;
            let want: Vec<f32> = (&x + &y)?.to_vec1()?;
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let got: Vec<f32> = pool.install(|| add(&x, &y))?.to_vec1()?;
            assert!(want
                .iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        let x = Tensor::randn(0f32, 1.0, (64, 48), &dev)?;
        let y = Tensor::randn(0f32, 1.0, (48, 64), &dev)?.t()?;
        let want: Vec<Vec<f32>> = (&x + &y)?.to_vec2()?;
        assert_eq!(add(&x, &y)?.to_vec2::<f32>()?, want);
        let x = Tensor::randn(0f64, 1.0, (5, 3), &dev)?;
        assert_eq!(add(&x, &x)?.to_vec2::<f64>()?, (&x + &x)?.to_vec2::<f64>()?);
        Ok(())
    }
}
