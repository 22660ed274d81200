//! An output buffer shared by parallel tasks that each write their own disjoint part.

/// A raw pointer to an f32 buffer that rayon tasks may share. The buffer must outlive the
/// tasks, and no two tasks may write the same element.
///
/// Only raw pointers come out of it ([`SharedOut::at`]): a buffer made by
/// [`SharedOut::spare`] is uninitialised until the tasks write it, and no reference may be
/// made to a value not yet written.
pub(crate) struct SharedOut(*mut f32);

// SAFETY: the pointer is only dereferenced through `at`, whose callers write disjoint
// elements (each call site states its split) of a buffer that outlives the tasks.
unsafe impl Send for SharedOut {}
// SAFETY: as for `Send`: shared use only hands out pointers to disjoint elements.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// For a buffer the tasks fill whole: `v` is emptied and given room for `len` values,
    /// left unwritten (no pass to zero what is about to be overwritten). Write them only
    /// through raw pointers (or as `MaybeUninit<f32>`); once every value is written, the
    /// caller sets `v`'s length to `len`.
    pub(crate) fn spare(v: &mut Vec<f32>, len: usize) -> Self {
        v.clear();
        v.reserve_exact(len);
        Self(v.as_mut_ptr())
    }

    /// A pointer to element `i`.
    ///
    /// # Safety
    /// `i` must lie in the buffer (`i <= len`, its length or reserved room).
    pub(crate) unsafe fn at(&self, i: usize) -> *mut f32 {
        // SAFETY: the caller keeps `i` inside the buffer's allocation
        unsafe { self.0.add(i) }
    }
}
