//! Software prefetch for kernels that stream data from memory once (a decode step reads
//! every weight and every cached key and value once): the hardware prefetchers alone left
//! one core well below what it can read.

/// Asks for the cache line holding `p + ahead` to be brought into L1. Past the end of an
/// allocation it names memory that is never read: a prefetch does not fault, and the
/// address is only formed (`wrapping_add`), never dereferenced.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T, ahead: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let at = p.cast::<u8>().wrapping_add(ahead);
        // SAFETY: a prefetch reads nothing the program sees and never faults, whatever
        // the address; `_mm_prefetch` needs only SSE, which every x86-64 CPU has
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast::<i8>())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, ahead);
}
