//! Device memory: element types, a caching allocator, typed buffers and strided layouts.
//!
//! A training step allocates and frees the same sizes over and over. Calling `cuMemAlloc` /
//! `cuMemFree` for each would synchronise the device and cost tens of microseconds each, so freed
//! blocks go back to a per-device pool keyed by their size class and the next request of that
//! class reuses one. All work on a device runs on its one stream, so a block freed while kernels
//! that read it are still queued is only handed to kernels queued after them: stream order makes
//! the reuse safe without events.

use crate::error::{driver, Error, Result};
use cudarc::driver::{result, sys, DeviceRepr};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// An element type kernels are instantiated for; `NAME` is the suffix of the kernel names
/// (`softmax_fwd_f32`).
pub trait DType: DeviceRepr + Copy + Default + Send + Sync + std::fmt::Debug + 'static {
    /// Kernel-name suffix.
    const NAME: &'static str;
}

impl DType for f32 {
    const NAME: &'static str = "f32";
}
impl DType for f64 {
    const NAME: &'static str = "f64";
}
impl DType for half::f16 {
    const NAME: &'static str = "f16";
}
impl DType for half::bf16 {
    const NAME: &'static str = "bf16";
}
impl DType for i64 {
    const NAME: &'static str = "i64";
}
impl DType for u32 {
    const NAME: &'static str = "u32";
}
impl DType for u8 {
    const NAME: &'static str = "u8";
}

/// Bytes a request of `bytes` really takes: 512-byte steps up to 1 MiB, then 2 MiB steps, so a
/// block can serve requests of nearby sizes.
pub fn size_class(bytes: usize) -> usize {
    const SMALL: usize = 512;
    const LARGE: usize = 2 << 20;
    if bytes == 0 {
        0
    } else if bytes <= 1 << 20 {
        bytes.div_ceil(SMALL) * SMALL
    } else {
        bytes.div_ceil(LARGE) * LARGE
    }
}

/// Counters of the allocator, for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// `cuMemAlloc` calls so far.
    pub driver_allocs: u64,
    /// Requests served from the pool.
    pub reuses: u64,
    /// Bytes held in free blocks now.
    pub cached_bytes: usize,
    /// Bytes in blocks handed out now.
    pub live_bytes: usize,
}

/// The free blocks of one device, by size class.
#[derive(Default)]
pub(crate) struct Pool {
    inner: Mutex<PoolInner>,
}

#[derive(Default)]
struct PoolInner {
    free: BTreeMap<usize, Vec<sys::CUdeviceptr>>,
    stats: PoolStats,
}

impl Pool {
    /// A block of `class` bytes; the device's context must be current on this thread.
    pub(crate) fn take(&self, class: usize) -> Result<sys::CUdeviceptr> {
        if class == 0 {
            return Ok(0);
        }
        let mut p = self.inner.lock().expect("pool lock");
        if let Some(ptr) = p.free.get_mut(&class).and_then(Vec::pop) {
            p.stats.reuses += 1;
            p.stats.cached_bytes -= class;
            p.stats.live_bytes += class;
            return Ok(ptr);
        }
        // SAFETY: the caller made the device's context current; the size is nonzero.
        let ptr = match unsafe { result::malloc_sync(class) } {
            Ok(ptr) => ptr,
            Err(_) => {
                // Out of memory, perhaps only because the pool holds it: give the cache back to
                // the driver and try once more.
                Self::release_all(&mut p);
                // SAFETY: as above.
                unsafe { result::malloc_sync(class) }
                    .map_err(driver(format!("cuMemAlloc of {class} bytes")))?
            }
        };
        p.stats.driver_allocs += 1;
        p.stats.live_bytes += class;
        Ok(ptr)
    }

    /// Returns a block to the pool.
    pub(crate) fn give(&self, class: usize, ptr: sys::CUdeviceptr) {
        if class == 0 {
            return;
        }
        let mut p = self.inner.lock().expect("pool lock");
        p.free.entry(class).or_default().push(ptr);
        p.stats.cached_bytes += class;
        p.stats.live_bytes -= class;
    }

    fn release_all(p: &mut PoolInner) {
        for (_, ptrs) in std::mem::take(&mut p.free) {
            for ptr in ptrs {
                // SAFETY: every pooled pointer came from cuMemAlloc and no buffer refers to it.
                let _ = unsafe { result::free_sync(ptr) };
            }
        }
        p.stats.cached_bytes = 0;
    }

    /// Frees every cached block (the device's context must be current and its stream idle).
    pub(crate) fn empty(&self) {
        Self::release_all(&mut self.inner.lock().expect("pool lock"));
    }

    pub(crate) fn stats(&self) -> PoolStats {
        self.inner.lock().expect("pool lock").stats
    }
}

/// A strided view of at most 6 dimensions, as kernels read their inputs (`kernels/common.cuh`'s
/// `Layout`): element `i` of the row-major order over `shape` is at
/// `offset + Σ index_d · stride_d`. Broadcasting is a stride of 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    rank: i32,
    pad: i32,
    offset: i64,
    shape: [i64; 6],
    stride: [i64; 6],
}

// SAFETY: plain-old-data with the C layout of the kernels' `ptm::Layout`.
unsafe impl DeviceRepr for Layout {}

/// The most dimensions a [`Layout`] holds.
pub const MAX_RANK: usize = 6;

impl Layout {
    /// A view with explicit strides (in elements) and offset.
    pub fn strided(shape: &[usize], strides: &[isize], offset: usize) -> Result<Layout> {
        if shape.len() != strides.len() {
            return Err(Error::Invalid(format!(
                "layout: shape {shape:?} and strides {strides:?} differ in rank"
            )));
        }
        if shape.len() > MAX_RANK {
            return Err(Error::Invalid(format!(
                "layout: rank {} of shape {shape:?} is over the kernels' {MAX_RANK}",
                shape.len()
            )));
        }
        let mut l = Layout {
            rank: shape.len() as i32,
            offset: offset as i64,
            ..Layout::default()
        };
        for (d, (&s, &st)) in shape.iter().zip(strides).enumerate() {
            l.shape[d] = s as i64;
            l.stride[d] = st as i64;
        }
        Ok(l)
    }

    /// A contiguous row-major view of `shape`.
    pub fn contiguous(shape: &[usize]) -> Result<Layout> {
        let mut strides = vec![0isize; shape.len()];
        let mut s = 1isize;
        for d in (0..shape.len()).rev() {
            strides[d] = s;
            s *= shape[d] as isize;
        }
        Layout::strided(shape, &strides, 0)
    }

    /// The view's shape.
    pub fn shape(&self) -> &[i64] {
        &self.shape[..self.rank as usize]
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape[..self.rank as usize]
            .iter()
            .product::<i64>()
            .max(0) as usize
    }

    /// Whether some dimension longer than 1 has stride 0 (a broadcast: one element seen many times).
    pub fn has_broadcast(&self) -> bool {
        (0..self.rank as usize).any(|d| self.shape[d] > 1 && self.stride[d] == 0)
    }

    /// The smallest and one past the largest element index the view touches (`None` when empty).
    pub fn span(&self) -> Option<(i64, i64)> {
        if self.numel() == 0 {
            return None;
        }
        let (mut lo, mut hi) = (self.offset, self.offset);
        for d in 0..self.rank as usize {
            let reach = (self.shape[d] - 1) * self.stride[d];
            if reach < 0 {
                lo += reach;
            } else {
                hi += reach;
            }
        }
        Some((lo, hi + 1))
    }

    /// An error unless every element the view reads lies in a buffer of `len` elements.
    pub fn check_within(&self, len: usize, what: &str) -> Result<()> {
        match self.span() {
            Some((lo, hi)) if lo < 0 || hi as usize > len => Err(Error::Invalid(format!(
                "{what}: strided view reaches elements {lo}..{hi} of a buffer of {len}"
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_and_never_shrink() {
        assert_eq!(size_class(0), 0);
        assert_eq!(size_class(1), 512);
        assert_eq!(size_class(512), 512);
        assert_eq!(size_class(513), 1024);
        assert_eq!(size_class(1 << 20), 1 << 20);
        assert_eq!(size_class((1 << 20) + 1), 2 << 20);
        assert_eq!(size_class((2 << 20) + 1), 4 << 20);
        for b in [3usize, 700, 4097, 999_999, 5_000_000] {
            assert!(size_class(b) >= b);
        }
    }

    #[test]
    fn layout_span_covers_negative_and_broadcast_strides() {
        let l = Layout::strided(&[2, 3], &[3, 1], 0).unwrap();
        assert_eq!(l.span(), Some((0, 6)));
        assert_eq!(l.numel(), 6);
        let t = Layout::strided(&[3, 2], &[1, 3], 0).unwrap();
        assert_eq!(t.span(), Some((0, 6)));
        let b = Layout::strided(&[4, 3], &[0, 1], 2).unwrap();
        assert_eq!(b.span(), Some((2, 5)));
        assert!(b.check_within(5, "x").is_ok());
        assert!(b
            .check_within(4, "x")
            .unwrap_err()
            .to_string()
            .contains("2..5"));
        let r = Layout::strided(&[3], &[-1], 2).unwrap();
        assert_eq!(r.span(), Some((0, 3)));
        assert_eq!(Layout::contiguous(&[2, 0, 3]).unwrap().span(), None);
        assert!(Layout::contiguous(&[1; 7]).is_err());
    }

    #[test]
    fn layout_matches_the_kernels_struct_size() {
        // ptm::Layout in kernels/common.cuh: int, int, i64, i64[6], i64[6].
        assert_eq!(std::mem::size_of::<Layout>(), 4 + 4 + 8 + 48 + 48);
    }
}
