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
