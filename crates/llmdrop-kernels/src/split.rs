//! Running a range of independent items as one contiguous part per thread.

use std::ops::Range;

use rayon::prelude::*;

/// Calls `run` on `0..items` cut into one contiguous part per thread of rayon's pool, or
/// once on the whole range when `worth_it` is false, the pool has one thread, or there
/// are fewer than two items.
pub(crate) fn split_items(items: usize, worth_it: bool, run: impl Fn(Range<usize>) + Sync) {
    let threads = rayon::current_num_threads();
    if threads <= 1 || !worth_it || items < 2 {
        run(0..items);
    } else {
        let parts = threads.min(items);
        (0..parts)
            .into_par_iter()
            .for_each(|p| run(p * items / parts..(p + 1) * items / parts));
    }
}

/// Calls `f((j, chunk))` on every `len`-value chunk `j` of `data` (the last may be shorter),
/// side by side on rayon's threads when `parallel`, else in order on this one.
pub(crate) fn for_each_chunk<T: Send>(
    data: &mut [T],
    len: usize,
    parallel: bool,
    f: impl Fn((usize, &mut [T])) + Sync + Send,
) {
    match parallel {
        true => data.par_chunks_mut(len).enumerate().for_each(f),
        false => data.chunks_mut(len).enumerate().for_each(f),
    }
}
