//! How the process allocator treats the large buffers a training step frees.
//!
//! A step of GPT-2 124M allocates and frees the same buffers every time: activations, gradients,
//! 100-MB logits chunks. glibc's malloc returns large freed blocks to the kernel (it serves
//! anything above its mmap threshold, at most 32 MB, with a fresh mapping, and trims the heap top
//! past 128 KB), so the next step pays a page fault and a zeroed page for every 4 KiB again:
//! 390 000 faults (1.6 GB) a step were measured at B=4, T=128. Raising both thresholds keeps freed
//! memory in the process, where the next step's allocations reuse it: no faults after the first
//! step. The cost is that the process keeps its peak footprint until it exits.
//!
//! This changes process-wide allocator settings, so a library does not do it on its own: the
//! program calls [`keep_freed_memory`] once at start (the xtask driver does). Elsewhere it does
//! nothing.

/// Asks the C allocator to keep freed memory for reuse instead of returning it to the kernel
/// (blocks up to 1 GiB come from the heap, and up to 2 GiB of free heap top is kept). Returns
/// whether the settings were taken: glibc on Linux only.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes tuning parameters of glibc's malloc (it takes the arena
        // locks itself); it neither reads nor invalidates memory the program holds.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_settings() {
        assert!(super::keep_freed_memory());
    }
}
