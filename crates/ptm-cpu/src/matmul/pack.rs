//! The packed GEMM driver shared by every SIMD micro-kernel (the BLIS loop structure).
//!
//! 1. A is packed once into row panels of MR, B into column panels of NR (both zero-padded), each
//!    panel `k` steps deep and contiguous, so the micro-kernel reads both with unit stride
//!    whatever the operands' strides (transposed views included). B is packed one slab of SLAB
//!    columns at a time, which bounds the packing memory for vocabulary-wide operands.
//! 2. Per slab, C is cut into blocks of `MC × NC`; rayon runs the blocks in parallel (they are
//!    disjoint).
//! 3. Per block and per `KC` slice of k, the micro-kernel runs over every (MR row panel, NR column
//!    panel) pair: a full tile accumulates straight into C, an edge tile goes through a scratch
//!    tile.
//!
//! Sizes: the A micro-panel of the inner loop (MR·KC·4 = 6 KiB) stays in L1; the B panels of a
//! block (KC·NC·4 = 256 KiB) stay in the 1 MiB L2.

use super::MatRef;
use rayon::prelude::*;

/// A register-tile kernel: `C[MR×NR] += Σ_p A[:, p] ⊗ B[p, :]`, or `=` when overwriting, over
/// `steps` packed steps of k (one k per step for f32 panels; a pair of k per step for bf16 panels,
/// whose `u32` holds two bf16).
pub(crate) trait MicroKernel {
    /// The packed panel element.
    type Packed: PackedElem;
    /// Rows of the tile.
    const MR: usize;
    /// Columns of the tile.
    const NR: usize;

    /// # Safety
    /// `a` must be readable for `steps·MR` packed elements and `b` for `steps·NR`; `c` must be
    /// writable for `MR` rows of `NR` f32s spaced `ldc` apart, not aliased by anything else during
    /// the call; and the CPU must support the kernel's instruction set. With `overwrite` the tile
    /// is stored without reading C first (C may hold garbage).
    unsafe fn run(
        steps: usize,
        a: *const Self::Packed,
        b: *const Self::Packed,
        c: *mut f32,
        ldc: usize,
        overwrite: bool,
    );
}

/// A packed panel element, with per-thread buffers kept between calls.
pub(crate) trait PackedElem: Copy + Default + Send + Sync + 'static {
    /// The buffers for A and B.
    fn slots() -> (&'static Slot<Self>, &'static Slot<Self>);
}

type Slot<T> = std::thread::LocalKey<std::cell::Cell<Vec<T>>>;

impl PackedElem for f32 {
    fn slots() -> (&'static Slot<f32>, &'static Slot<f32>) {
        (&PACKED_A, &PACKED_B)
    }
}

impl PackedElem for u32 {
    fn slots() -> (&'static Slot<u32>, &'static Slot<u32>) {
        (&PACKED_A_PAIRS, &PACKED_B_PAIRS)
    }
}

/// Slice of k per pass over a block of C.
const KC: usize = 256;
/// Rows of C per parallel block (a multiple of every MR: 6).
const MC: usize = 96;
/// Columns of C per parallel block (a multiple of every NR: 64 and 16).
const NC: usize = 256;
/// Columns of B packed at a time (a multiple of NC): 768 × 4096 f32 is 12 MiB.
const SLAB: usize = 16 * NC;

/// How [`pack_panels`] reads an operand: `get(idx, p)` one element; `run(idx, p, w)` the `w`
/// consecutive elements `(idx..idx+w, p)` when they are contiguous in memory; `line(idx)` the
/// `depth` elements `(idx, 0..depth)` when those are (a transposed operand).
struct Reader<G, R, L> {
    get: G,
    run: R,
    line: L,
}

/// Packs a `count × depth` operand into `ceil(count/width)` panels of `depth × width`, zero-padded,
/// in `out` (grown as needed, reused across calls): element `(idx, p)` goes to panel
/// `idx / width`, position `p·width + idx % width`. Every element of the packed length is
/// written, so `out` may hold anything beforehand.
fn pack_panels<'a, G, R, L>(
    out: &mut Vec<f32>,
    count: usize,
    depth: usize,
    width: usize,
    read: Reader<G, R, L>,
) where
    G: Fn(usize, usize) -> f32 + Sync,
    R: Fn(usize, usize, usize) -> Option<&'a [f32]> + Sync,
    L: Fn(usize) -> Option<&'a [f32]> + Sync,
{
    let len = count.div_ceil(width) * depth * width;
    if out.len() < len {
        out.resize(len, 0.0);
    }
    let out = &mut out[..len];
    let fill = |(q, panel): (usize, &mut [f32])| {
        let i0 = q * width;
        let w = width.min(count - i0);
        if (read.line)(i0).is_some() {
            // Transposed source: read each line once, contiguously, and scatter it down the panel
            // (the panel, depth × width, is small enough to stay in cache while written).
            for i in 0..w {
                let src = (read.line)(i0 + i).unwrap_or_default();
                for (p, &x) in src.iter().enumerate().take(depth) {
                    panel[p * width + i] = x;
                }
            }
        } else {
            for p in 0..depth {
                let dst = &mut panel[p * width..p * width + w];
                match (read.run)(i0, p, w) {
                    Some(src) => dst.copy_from_slice(src),
                    None => dst
                        .iter_mut()
                        .enumerate()
                        .for_each(|(i, d)| *d = (read.get)(i0 + i, p)),
                }
            }
        }
        if w < width {
            for p in 0..depth {
                panel[p * width + w..(p + 1) * width].fill(0.0);
            }
        }
    };
    if count * depth >= 1 << 16 {
        out.par_chunks_mut((depth * width).max(1))
            .enumerate()
            .for_each(fill);
    } else {
        out.chunks_mut((depth * width).max(1))
            .enumerate()
            .for_each(fill);
    }
}

/// A (`m × k`) as MR-row panels.
fn pack_a(out: &mut Vec<f32>, m: usize, k: usize, mr: usize, a: &MatRef<f32>) {
    let read = Reader {
        get: |i, p| a.at(i, p),
        run: |i, p, w| (a.row_stride == 1).then(|| &a.data[a.offset + p * a.col_stride + i..][..w]),
        line: |i| {
            (a.col_stride == 1 && a.row_stride != 1)
                .then(|| &a.data[a.offset + i * a.row_stride..][..k])
        },
    };
    pack_panels(out, m, k, mr, read)
}

/// B (`k × n`) as NR-column panels.
fn pack_b(out: &mut Vec<f32>, k: usize, n: usize, nr: usize, b: &MatRef<f32>) {
    let read = Reader {
        get: |j, p| b.at(p, j),
        run: |j, p, w| (b.col_stride == 1).then(|| &b.data[b.offset + p * b.row_stride + j..][..w]),
        line: |j| {
            (b.row_stride == 1 && b.col_stride != 1)
                .then(|| &b.data[b.offset + j * b.col_stride..][..k])
        },
    };
    pack_panels(out, n, k, nr, read)
}

/// Packing buffers kept per thread between calls: a fresh multi-megabyte buffer per product
/// costs a page fault per 4 KiB page on first touch, more than the packing itself.
/// Buffers are taken out while in use (a nested call on the same thread finds none and allocates)
/// and kept afterwards only up to this many f32s each.
const KEEP_PACKED: usize = 16 << 20;

thread_local! {
    static PACKED_A: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
    static PACKED_B: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
    static PACKED_A_PAIRS: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
    static PACKED_B_PAIRS: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

fn give_back<P: PackedElem>(slot: &'static Slot<P>, buf: Vec<P>) {
    if buf.len() <= KEEP_PACKED {
        slot.set(buf);
    }
}

/// The output pointer shared by the parallel blocks, which write disjoint tiles.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every parallel task writes only the tiles of its own (row block, column block) of C, so
// no element is written by two threads, and `c` outlives the parallel section.
unsafe impl Send for OutPtr {}
// SAFETY: as above; the pointer itself is only copied, never used to alias a tile across tasks.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The element `offset` places past the start. A method, so closures capture the whole
    /// (Sync) wrapper rather than its raw-pointer field.
    ///
    /// # Safety
    /// `offset` must lie inside C.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: forwarded to the caller.
        unsafe { self.0.add(offset) }
    }
}

/// `C += A·B`, or `C = A·B` with `overwrite` (C is then never read: the first pass over k stores
/// the tiles, so fresh pages are written before they are read and never fault in as the shared
/// zero page first); micro-kernel `K`; `C` is row-major `m × n`.
///
/// # Safety
/// The CPU must support `K`'s instruction set.
pub(crate) unsafe fn gemm<K: MicroKernel<Packed = f32>>(
    m: usize,
    n: usize,
    k: usize,
    a: &MatRef<f32>,
    b: &MatRef<f32>,
    c: &mut [f32],
    overwrite: bool,
) {
    let pack_a_fn = |out: &mut Vec<f32>| pack_a(out, m, k, K::MR, a);
    let pack_b_fn = |out: &mut Vec<f32>, s0: usize, ns: usize| {
        let slab = MatRef {
            data: b.data,
            offset: b.offset + s0 * b.col_stride,
            row_stride: b.row_stride,
            col_stride: b.col_stride,
        };
        pack_b(out, k, ns, K::NR, &slab)
    };
    // SAFETY: forwarded to the caller.
    unsafe { drive::<K>(m, n, k, pack_a_fn, pack_b_fn, c, overwrite) }
}

/// The loop nest over packed panels: A packed once (`steps` packed steps deep), B packed one slab
/// of columns at a time, blocks of C in parallel, `KC` steps per pass.
///
/// # Safety
/// The CPU must support `K`'s instruction set, and the packers must fill panels as `K` reads them
/// (`steps·MR` per A panel, `steps·NR` per B panel, zero-padded).
pub(crate) unsafe fn drive<K: MicroKernel>(
    m: usize,
    n: usize,
    steps: usize,
    pack_a_fn: impl FnOnce(&mut Vec<K::Packed>),
    pack_b_fn: impl Fn(&mut Vec<K::Packed>, usize, usize),
    c: &mut [f32],
    overwrite: bool,
) {
    let (mr, nr) = (K::MR, K::NR);
    assert_eq!(c.len(), m * n, "gemm: C must hold m*n elements");
    if steps == 0 && overwrite {
        c.fill(0.0);
    }
    if m == 0 || n == 0 || steps == 0 {
        return;
    }
    let (slot_a, slot_b) = K::Packed::slots();
    let (mut ap, mut bp) = (slot_a.take(), slot_b.take());
    pack_a_fn(&mut ap);
    let out = OutPtr(c.as_mut_ptr());
    // B is packed one slab of columns at a time: the packed copy of a vocabulary-wide operand
    // (768 × 50 257) would otherwise add its whole size to the process's peak memory.
    for s0 in (0..n).step_by(SLAB) {
        let ns = SLAB.min(n - s0);
        pack_b_fn(&mut bp, s0, ns);
        let blocks: Vec<(usize, usize)> = (0..m.div_ceil(MC))
            .flat_map(|ib| (0..ns.div_ceil(NC)).map(move |jb| (ib, jb)))
            .collect();
        let run_block = |&(ib, jb): &(usize, usize)| {
            let (i0, j0) = (ib * MC, jb * NC);
            let (mc, nc) = (MC.min(m - i0), NC.min(ns - j0));
            let mut scratch = vec![0.0f32; mr * nr];
            for p0 in (0..steps).step_by(KC) {
                let kc = KC.min(steps - p0);
                let store = overwrite && p0 == 0;
                for ir in (0..mc).step_by(mr) {
                    let a_panel = &ap[((i0 + ir) / mr * steps + p0) * mr..][..kc * mr];
                    for jr in (0..nc).step_by(nr) {
                        let b_panel = &bp[((j0 + jr) / nr * steps + p0) * nr..][..kc * nr];
                        let (rows, cols) = (mr.min(mc - ir), nr.min(nc - jr));
                        // SAFETY: the tile's top-left element (i0+ir, s0+j0+jr) lies inside C.
                        let tile = unsafe { out.at((i0 + ir) * n + s0 + j0 + jr) };
                        if rows == mr && cols == nr {
                            // SAFETY: panels hold kc·MR and kc·NR values; the full tile is inside
                            // C (rows and cols fit) and belongs to this task alone; the ISA was
                            // checked by our caller.
                            unsafe {
                                K::run(kc, a_panel.as_ptr(), b_panel.as_ptr(), tile, n, store)
                            };
                        } else {
                            // SAFETY: as above, with the scratch tile (MR×NR, row stride NR) as
                            // output.
                            unsafe {
                                K::run(
                                    kc,
                                    a_panel.as_ptr(),
                                    b_panel.as_ptr(),
                                    scratch.as_mut_ptr(),
                                    nr,
                                    true,
                                )
                            };
                            for r in 0..rows {
                                for j in 0..cols {
                                    // SAFETY: (r, j) is within the valid part of this task's tile.
                                    unsafe {
                                        let dst = tile.add(r * n + j);
                                        *dst = if store { 0.0 } else { *dst } + scratch[r * nr + j];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        if m * ns * steps >= 1 << 18 && blocks.len() > 1 {
            blocks.par_iter().for_each(run_block);
        } else {
            blocks.iter().for_each(run_block);
        }
    }
    give_back(slot_a, ap);
    give_back(slot_b, bp);
}
