//! How the process asks glibc's allocator to hold memory: what a run of
//! 100,000 files costs at its peak depends as much on this as on what it
//! allocates (BENCHMARKS.md, "Small files in git's memory").
//!
//! Owns the allocator's settings and giving freed pages back; never
//! allocates for the run itself.

/// Called first in `main`, before any thread starts.
///
/// - One arena: the HTTP client's threads would otherwise each keep a heap
///   of their own, whose freed pages still count as the process's memory.
/// - Blocks of 128 KiB and more from their own mappings, always: glibc
///   raises that threshold each time such a block is freed (up to 32 MiB),
///   after which the growing lists of a run land among small blocks and
///   their freed space cannot be given back.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        const M_ARENA_MAX: std::ffi::c_int = -8;
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        // SAFETY: glibc's mallopt takes no pointer; called before any
        // other thread exists.
        unsafe {
            mallopt(M_ARENA_MAX, 1);
            mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

/// Gives the pages malloc holds free back to the system, where a run frees
/// much at once: after the working-tree diff (15 MB at 100,000 new files),
/// before the index grows by as much, and once the staged index is parked
/// on disk (13 MB), so that the push does not carry them.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes no pointer and may be called
        // at any time from any thread.
        unsafe {
            malloc_trim(0);
        }
    }
}
