//! Returning freed heap memory to the kernel.
//!
//! glibc's allocator keeps what a burst of streams freed (thousands of
//! stalled readers' chunks, say) mapped in its arenas, interleaved with what
//! is still in use, so the process's RSS would stay at the burst's peak for
//! as long as it runs. `malloc_trim` hands the whole free pages back.

/// Returns the free pages of every allocator arena to the kernel. It walks
/// the arenas' free lists: milliseconds for a heap of hundreds of MiB, so
/// call it rarely (after many streams ended, not per stream).
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only reorganises the allocator's own free lists
    // (under its locks) and takes no pointer from us.
    unsafe {
        libc::malloc_trim(0);
    }
}
