//! An output buffer shared by parallel tasks that each write their own disjoint part.

/// A raw pointer to an f32 buffer that rayon tasks may share. The buffer must outlive the
/// tasks, and no two tasks may write the same element.
pub(crate) struct SharedOut(*mut f32);

// SAFETY: users write disjoint elements only (each call site states its split), and the
// buffer outlives the tasks.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    pub(crate) fn new(buf: &mut [f32]) -> Self {
        Self(buf.as_mut_ptr())
    }

    /// For a buffer the tasks fill whole: `v` is emptied and given room for `len` values,
    /// left unwritten (no pass to zero what is about to be overwritten). Once every value
    /// is written, the caller sets `v`'s length to `len`.
    pub(crate) fn spare(v: &mut Vec<f32>, len: usize) -> Self {
        v.clear();
        v.reserve_exact(len);
        Self(v.as_mut_ptr())
    }

    /// # Safety
    /// `i` must lie in the buffer.
    pub(crate) unsafe fn at(&self, i: usize) -> *mut f32 {
        self.0.add(i)
    }
}
