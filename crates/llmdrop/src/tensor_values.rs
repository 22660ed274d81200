//! Reading a tensor's f32 values in place.

use candle_core::{CpuStorage, Storage, Tensor};

use crate::error::Result;

/// `f` of the values of an f32 tensor (row-major), read in place when it is a contiguous
/// CPU tensor, else from a copy. A tensor of another dtype is an error.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&v[a..b]));
        }
    }
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&v))
}
