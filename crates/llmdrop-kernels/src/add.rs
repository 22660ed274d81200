//! `x + y` for f32 tensors of one shape (the residual stream's adds), split across
//! rayon's pool and written unzeroed: candle's CPU add runs on one thread when its own
//! spinning pool is off (as the CLI sets it), a serial step between parallel products.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use crate::elementwise::{same_shape_f32, zip_parts};

struct Add;

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
        let (x, y) = same_shape_f32("add", (sx, lx), (sy, ly))?;
        // SAFETY: the closure writes every value of its room (the three slices are the
        // same length: zip_parts cuts x, y and the room alike)
        let out = unsafe {
            zip_parts(x, y, |x, y, o| {
                for ((o, &a), &b) in o.iter_mut().zip(x).zip(y) {
                    o.write(a + b);
                }
            })
        };
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
    // (`contiguous` is a cheap clone of a tensor that already is)
    x.contiguous()?.apply_op2_no_bwd(&y.contiguous()?, &Add)
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
        for n in [7usize, 3 * (1 << 16) + 5] {
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
