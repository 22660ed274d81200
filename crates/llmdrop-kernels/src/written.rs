//! Output vectors their producer writes whole, never zeroed first.

use std::mem::MaybeUninit;

/// A vector of `len` values made by `fill`, which is handed the vector's room unwritten:
/// no pass zeroing what is about to be overwritten (serial, and a few percent of a
/// forward pass when every op's output was zeroed first).
///
/// # Safety
/// `fill` must write every one of the `len` values it is handed (if it panics instead,
/// the vector is dropped empty).
pub unsafe fn written<T>(len: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the caller's contract: `fill` wrote all `len` values
    unsafe { v.set_len(len) };
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_what_fill_wrote() {
        // SAFETY: the closure writes all 100 values
        let v = unsafe {
            written(100, |o| {
                for (i, x) in o.iter_mut().enumerate() {
                    x.write(i as u32 * 3);
                }
            })
        };
        assert_eq!(v, (0..100).map(|i| i * 3).collect::<Vec<u32>>());
        // SAFETY: nothing to write
        assert!(unsafe { written::<f32>(0, |o| assert!(o.is_empty())) }.is_empty());
    }
}
