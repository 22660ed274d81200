//! Advice to the kernel that stored bytes already converted will not be read again soon
//! (and that the next ones will be read soon):
//! layer-streamed passes read each layer's bytes once, and without this the mapped pages
//! stay resident (and counted in the process's memory) until the mapping goes.
//!
//! Advice only: a page dropped here is read back from the file if touched again, so
//! nothing a later read returns changes.

use std::fs::File;
use std::ops::Range;

/// The page size (4 KiB where the system does not say).
fn page_size() -> usize {
    // SAFETY: sysconf reads a system constant; it has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// `range` widened to whole pages of a mapping of `len` bytes (a neighbour's page dropped
/// with it is read back when touched).
fn pages(range: Range<usize>, len: usize) -> Option<Range<usize>> {
    if range.is_empty() || range.start >= len {
        return None;
    }
    let page = page_size();
    Some(range.start / page * page..range.end.min(len))
}

/// Drops the resident pages of `map[range]` (a read-only, shared file mapping) and asks
/// the page cache to let the file's bytes go.
pub(crate) fn drop_mapped(
    map: &memmap2::Mmap,
    file: &File,
    file_offset: usize,
    range: Range<usize>,
) {
    let Some(r) = pages(range.clone(), map.len()) else {
        return;
    };
    // SAFETY: `r` lies inside the mapping (its start rounded down to a page boundary of
    // the page-aligned mapping, its end clamped to the mapping's length). MADV_DONTNEED on
    // a read-only MAP_SHARED file mapping only unmaps the pages: a later read faults them
    // back in from the file, so no borrowed slice of the mapping ever sees other bytes.
    unsafe {
        libc::madvise(
            map.as_ptr().add(r.start) as *mut libc::c_void,
            r.end - r.start,
            libc::MADV_DONTNEED,
        );
    }
    drop_cached(file, (file_offset + range.start) as u64, range.len() as u64);
}

/// Asks the kernel to start reading `len` bytes of `file` from `offset` into the page cache
/// in the background (the next layer, while this one computes); no page is mapped here.
pub(crate) fn read_ahead(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return;
    };
    // SAFETY: posix_fadvise only reads its arguments; an fd the File owns stays open for
    // the call. The advice is a hint and never changes the file's contents.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), off, len, libc::POSIX_FADV_WILLNEED);
    }
}

/// Asks the page cache to let `len` bytes of `file` from `offset` go (bytes read with
/// `read`, not mapped, are not the process's memory but still the machine's).
pub(crate) fn drop_cached(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return;
    };
    // SAFETY: posix_fadvise only reads its arguments; an fd the File owns stays open for
    // the call. The advice is a hint and never changes the file's contents.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), off, len, libc::POSIX_FADV_DONTNEED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_widen_to_whole_pages_inside_the_mapping() {
        let p = page_size();
        assert_eq!(pages(p + 10..3 * p + 1, 10 * p), Some(p..3 * p + 1));
        assert_eq!(pages(5..8, 6), Some(0..6));
        assert_eq!(pages(8..8, 100), None);
        assert_eq!(pages(50..60, 40), None);
    }
}
