//! The process allocator, tuned once so that librdkafka's fetch buffers go back to the system.
//!
//! librdkafka allocates every fetch response (up to `fetch.max.bytes`) with `malloc` on its
//! own threads and frees it when the last message of that response is released. glibc raises
//! its mmap threshold each time such a large block is freed, after which the next responses
//! come from the heap instead, where freed ones fragment it: a long scan's resident memory
//! then creeps far past its budget. Pinning the threshold keeps large blocks mmapped, so
//! each is returned to the system when freed. Small allocations are unaffected.
//!
//! The price is a page fault per page of every large allocation, which Arrow batches of
//! 10 MB feel (about 15% of a `ConsumerManager`'s time on 1 KiB messages), so only scans
//! given a budget below the default pin it; the setting then holds for the whole process.

/// Blocks at least this large are mmapped (glibc's default before it starts adjusting).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Pin glibc's mmap threshold, once per process. Elsewhere, nothing to do.
pub(crate) fn return_large_blocks_to_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes a malloc tunable; it is thread-safe.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        });
    }
}
