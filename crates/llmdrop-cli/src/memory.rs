//! Process memory housekeeping (the binary owns the process; the library never does this).

/// Hands memory freed since the last call back to the OS. glibc keeps freed heap pages
/// mapped (they still count in RSS) until asked; after a large, short-lived structure such
/// as the tokenizer is dropped, asking lowers the peak that the model load adds on top.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only returns free pages of glibc's own heap to the kernel
        unsafe {
            malloc_trim(0);
        }
    }
}

/// From now on, gives every heap block of 128 KiB or more its own mapping, returned to the
/// OS when freed. glibc's default raises that threshold to the largest block freed so far,
/// after which freed tensors (a layer-streamed pass's per-layer states, a head slice's
/// copies) stay in the heap and in RSS; a run held to a memory budget wants RSS to follow
/// what it holds. Costs a mapping and its page faults per large allocation.
pub fn map_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_MMAP_THRESHOLD: i32 = -3;
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes glibc's allocation policy for later allocations
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}
