//! The packed GEMM driver shared by every SIMD micro-kernel (the BLIS loop structure).
//!
//! 1. B is packed into column panels of NR, each `k` steps deep, contiguous and zero-padded, so
//!    the micro-kernel reads its vectors with unit stride whatever B's strides (transposed views
//!    included); one slab of SLAB columns at a time, which bounds the packing memory for
//!    vocabulary-wide operands. A row-major A is read in place (a tile broadcasts from six
//!    sequential row streams); only its last, partial row panel is packed. Other layouts of A are
//!    packed once into row panels of MR.
//! 2. Per slab, C is cut into blocks of at most `MC × NC`, their count a multiple of the thread
//!    count where the panels allow (so that no thread idles at the end); rayon runs the blocks in
//!    parallel (they are disjoint).
//! 3. Per block and per `KC` slice of k, the micro-kernel runs over every (NR column panel, MR row
//!    panel) pair, column panel outermost: a full tile accumulates straight into C, an edge tile
//!    goes through a scratch tile.
//!
//! Sizes: one B panel (KC·NR·4 = 192 KiB) is read by every row panel of the block from the 1 MiB
//! L2, beside the block's A panels (MC·KC·4 = 288 KiB); an A micro-panel (MR·KC·4 = 18 KiB) stays
//! in L1 while a tile runs. A deep KC means few passes over C per product: each pass reads and
//! writes every C tile once (measured on the GPT-2 products: KC 768 ran 5–6 % faster than 256).

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
    /// `a` must be readable at every (row < MR, step < `steps`) and `b` for NR elements at every
    /// step < `steps`; `c` must be writable for `MR` rows of `NR` f32s spaced `ldc` apart, not
    /// aliased by anything else during the call; and the CPU must support the kernel's
    /// instruction set. With `overwrite` the tile is stored without reading C first (C may hold
    /// garbage).
    unsafe fn run(
        steps: usize,
        a: ARows<Self::Packed>,
        b: BSteps<Self::Packed>,
        c: *mut f32,
        ldc: usize,
        overwrite: bool,
    );
}

/// Where a micro-kernel reads its MR rows of A: element (row r, step p) at `ptr + r·row + p·step`.
/// A packed panel has `row` 1 and `step` MR; A read in place has its own strides (row-major: `row`
/// its row stride, `step` 1; a small transposed A: `row` 1, `step` its column stride).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ARows<P> {
    pub(crate) ptr: *const P,
    pub(crate) row: usize,
    pub(crate) step: usize,
}

impl<P> ARows<P> {
    /// The first `N` rows' start pointers (computed, not dereferenced).
    #[inline(always)]
    pub(crate) fn rows<const N: usize>(self) -> [*const P; N] {
        std::array::from_fn(|r| self.ptr.wrapping_add(r * self.row))
    }
}

/// Where a micro-kernel reads its NR columns of B: step p's values at `ptr + p·step`. A packed
/// panel has `step` NR; a row-major B read in place has its row stride.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BSteps<P> {
    pub(crate) ptr: *const P,
    pub(crate) step: usize,
}

/// An operand the micro-kernels read in place: its elements, the first one's offset and its
/// strides (a B read in place has column stride 1).
#[derive(Clone, Copy)]
pub(crate) struct InPlace<'a, P> {
    pub(crate) data: &'a [P],
    pub(crate) offset: usize,
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
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

/// Slice of k per pass over a block of C (packed steps: pairs of k for bf16).
const KC: usize = 768;
/// Rows of C per parallel block (a multiple of every MR: 6).
const MC: usize = 96;
/// Columns of C per parallel block (a multiple of every NR: 64 and 16).
const NC: usize = 256;
/// Columns of B packed at a time (a multiple of NC): 768 × 4096 f32 is 12 MiB.
const SLAB: usize = 16 * NC;
/// The largest register tile of any kernel (6×64), the size of the edge tiles' scratch.
const MAX_TILE: usize = 6 * 64;
/// A transposed A of at most this many elements (256 KiB of f32, a quarter of L2) is read in
/// place rather than packed.
const SMALL_TRANSPOSED_A: usize = 1 << 16;
/// A row-major B of at most this many elements is read in place when its padding allows.
const SMALL_B: usize = 1 << 16;
/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_WORK: usize = super::SMALL_PRODUCT;

/// A block of C: (first, count) of its MR row panels and of its NR column panels.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Block {
    row_panels: (usize, usize),
    col_panels: (usize, usize),
}

/// `total` panels cut into `parts` consecutive runs whose sizes differ by at most one.
fn even_runs(total: usize, parts: usize) -> impl Iterator<Item = (usize, usize)> {
    let (base, extra) = (total / parts, total % parts);
    (0..parts).map(move |i| (i * base + i.min(extra), base + usize::from(i < extra)))
}

/// The blocks of an `m_panels × n_panels` grid of `mr × nr` tiles: at most `MC × NC` elements
/// each (the cache sizes), and, for more than one thread, a count that is a multiple of `threads`
/// where the panels allow, so the last round of blocks keeps every thread busy. Extra cuts go to
/// the dimension whose blocks are longer.
fn blocks(
    m_panels: usize,
    n_panels: usize,
    (mr, nr): (usize, usize),
    threads: usize,
) -> Vec<Block> {
    let (mut rows, mut cols) = (m_panels.div_ceil(MC / mr), n_panels.div_ceil(NC / nr));
    while threads > 1 && (rows * cols) % threads != 0 {
        let row_len = m_panels.div_ceil(rows) * mr;
        let col_len = n_panels.div_ceil(cols) * nr;
        if row_len >= col_len && rows < m_panels {
            rows += 1;
        } else if cols < n_panels {
            cols += 1;
        } else if rows < m_panels {
            rows += 1;
        } else {
            break;
        }
    }
    even_runs(m_panels, rows)
        .flat_map(|r| {
            even_runs(n_panels, cols).map(move |c| Block {
                row_panels: r,
                col_panels: c,
            })
        })
        .collect()
}

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
                    Some(src) => copy_run(dst, src),
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

/// `dst = src` for the short runs packing copies (6 or 64 floats), in pieces of fixed length (16,
/// 8, 4, 2, 1 floats), which compile to inline moves: `copy_from_slice` of a run-time length is a
/// `memcpy` call per run, and the calls cost as much as the copying (8 % of a GPT-2 training
/// step went to `memmove`).
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    fn piece<const W: usize>(dst: &mut [f32], src: &[f32], at: &mut usize) {
        while *at + W <= dst.len() {
            let s: [f32; W] = src[*at..*at + W].try_into().unwrap_or([0.0; W]);
            dst[*at..*at + W].copy_from_slice(&s);
            *at += W;
        }
    }
    let src = &src[..dst.len()];
    let mut at = 0;
    piece::<16>(dst, src, &mut at);
    piece::<8>(dst, src, &mut at);
    piece::<4>(dst, src, &mut at);
    piece::<2>(dst, src, &mut at);
    piece::<1>(dst, src, &mut at);
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
    // A row-major A (unit column stride: activations, the common case) is read in place, each of
    // a tile's six rows a sequential stream; only its last, partial row panel is packed (the
    // kernel reads whole panels). Packing it all cost 5–10 % of a GPT-2 product. A transposed A
    // small enough to stay in L2 (an attention block's weights, 512 × 64) is read in place too:
    // each step's six values are adjacent, as in a packed panel, only further apart. Other
    // layouts are packed whole.
    let full = m / K::MR;
    let small_transposed = a.row_stride == 1 && m.saturating_mul(k) <= SMALL_TRANSPOSED_A;
    let in_place = ((a.col_stride == 1 || small_transposed) && m > 0 && k > 0).then(|| {
        assert!(
            a.offset + (m - 1) * a.row_stride + (k - 1) * a.col_stride < a.data.len(),
            "gemm: A ({m}×{k}, strides {} and {}) overruns its {} elements",
            a.row_stride,
            a.col_stride,
            a.data.len()
        );
        InPlace {
            data: a.data,
            offset: a.offset,
            row_stride: a.row_stride,
            col_stride: a.col_stride,
        }
    });
    let pack_a_fn = |out: &mut Vec<f32>| {
        if in_place.is_some() {
            let edge = MatRef {
                data: a.data,
                offset: a.offset + full * K::MR * a.row_stride,
                row_stride: a.row_stride,
                col_stride: a.col_stride,
            };
            pack_a(out, m - full * K::MR, k, K::MR, &edge)
        } else {
            pack_a(out, m, k, K::MR, a)
        }
    };
    // A row-major B is read in place, each step's NR values at the row stride, when it is exactly
    // one panel wide (an attention head's V, K or Q at d = 64 under the AVX-512 kernel), or small
    // enough to stay in L2 (a head's transposed keys, 64 × 512) and padded so that its last
    // panel's whole width can be read. Larger operands are packed: read in place, their rows lie
    // far apart.
    let panels_end = b.offset + k.saturating_sub(1) * b.row_stride + n.div_ceil(K::NR) * K::NR;
    let b_fits = n == K::NR || (k.saturating_mul(n) <= SMALL_B && panels_end <= b.data.len());
    let b_in_place = (b.col_stride == 1 && b_fits && k > 0).then(|| {
        assert!(
            b.offset + (k - 1) * b.row_stride + n <= b.data.len(),
            "gemm: B ({k}×{n}, row stride {}) overruns its {} elements",
            b.row_stride,
            b.data.len()
        );
        InPlace {
            data: b.data,
            offset: b.offset,
            row_stride: b.row_stride,
            col_stride: 1,
        }
    });
    let pack_b_fn = |out: &mut Vec<f32>, (s0, ns): (usize, usize), (p0, kc): (usize, usize)| {
        let slab = MatRef {
            data: b.data,
            offset: b.offset + s0 * b.col_stride + p0 * b.row_stride,
            row_stride: b.row_stride,
            col_stride: b.col_stride,
        };
        pack_b(out, kc, ns, K::NR, &slab)
    };
    // SAFETY: forwarded to the caller; `in_place` covers A's m×k elements (asserted above),
    // `drive` bounds-checks every panel of an in-place B, and the packers fill the panels that are
    // not read in place.
    unsafe {
        drive::<K>(
            m,
            n,
            k,
            (pack_a_fn, in_place),
            (pack_b_fn, b_in_place),
            c,
            overwrite,
        )
    }
}

/// The loop nest over packed panels: A packed once (`steps` packed steps deep) or read in place, B
/// packed one slab of columns and one slice of `KC` steps at a time, blocks of C in parallel.
///
/// `a` is the A packer and, when A is read in place, where it lies: the packer then packs only
/// the last, partial row panel (none when MR divides m). `pack_b_fn(out, (s0, ns), (p0, kc))`
/// packs columns `s0..s0+ns` of B, steps `p0..p0+kc`, as panels of `kc·NR`.
///
/// # Safety
/// The CPU must support `K`'s instruction set, and the packers must fill panels as `K` reads them
/// (`steps·MR` per A panel, `kc·NR` per B panel of a slice, zero-padded); an in-place A must hold
/// its `m × steps` elements at its row stride. An in-place B (`pack_b_fn` is then never called) is
/// bounds-checked here, panel by panel.
pub(crate) unsafe fn drive<K: MicroKernel>(
    m: usize,
    n: usize,
    steps: usize,
    (pack_a_fn, a_in_place): (
        impl FnOnce(&mut Vec<K::Packed>),
        Option<InPlace<'_, K::Packed>>,
    ),
    (pack_b_fn, b_in_place): (
        impl Fn(&mut Vec<K::Packed>, (usize, usize), (usize, usize)),
        Option<InPlace<'_, K::Packed>>,
    ),
    c: &mut [f32],
    overwrite: bool,
) {
    let (mr, nr) = (K::MR, K::NR);
    assert!(
        mr * nr <= MAX_TILE,
        "gemm: a {mr}×{nr} tile exceeds the scratch tile"
    );
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
    // Row panel q's rows for steps p0..p0+kc: in place for the whole panels of an in-place A,
    // else from the packed buffer (which then holds only the edge panel).
    let in_place_panels = a_in_place.map_or(0, |_| m / mr);
    let a_rows_at = |q: usize, p0: usize, kc: usize| -> ARows<K::Packed> {
        match a_in_place {
            Some(a) if q < in_place_panels => {
                let start = a.offset + q * mr * a.row_stride + p0 * a.col_stride;
                // The panel's last element read, bounds-checked once here.
                let _ = a.data[start + (mr - 1) * a.row_stride + (kc - 1) * a.col_stride];
                ARows {
                    ptr: a.data[start..].as_ptr(),
                    row: a.row_stride,
                    step: a.col_stride,
                }
            }
            _ => {
                let q = q - in_place_panels;
                ARows {
                    ptr: ap[(q * steps + p0) * mr..][..kc * mr].as_ptr(),
                    row: 1,
                    step: mr,
                }
            }
        }
    };
    let out = OutPtr(c.as_mut_ptr());
    // B is packed one slab of columns and one slice of k at a time, at most SLAB × KC values
    // (12 MiB): packing a deep operand whole (the 50 257 × 768 weight that the vocabulary
    // projection's backward reads) wrote 154 MB only to read it back from memory once per row
    // block. Each slice is then one parallel pass over the blocks of C.
    for s0 in (0..n).step_by(SLAB) {
        let ns = SLAB.min(n - s0);
        let parallel = m * ns * steps >= PARALLEL_WORK;
        let threads = if parallel {
            rayon::current_num_threads()
        } else {
            1
        };
        let blocks = blocks(m.div_ceil(mr), ns.div_ceil(nr), (mr, nr), threads);
        for p0 in (0..steps).step_by(KC) {
            let kc = KC.min(steps - p0);
            let store = overwrite && p0 == 0;
            if b_in_place.is_none() {
                pack_b_fn(&mut bp, (s0, ns), (p0, kc));
            }
            let bp = &bp;
            // Column panel q's steps p0..p0+kc: in place, or packed.
            let b_steps_at = |q: usize| -> BSteps<K::Packed> {
                match b_in_place {
                    Some(b) => {
                        let start = b.offset + s0 + q * nr + p0 * b.row_stride;
                        // The panel's last element read, bounds-checked once here.
                        let _ = b.data[start + (kc - 1) * b.row_stride + nr - 1];
                        BSteps {
                            ptr: b.data[start..].as_ptr(),
                            step: b.row_stride,
                        }
                    }
                    None => BSteps {
                        ptr: bp[q * kc * nr..][..kc * nr].as_ptr(),
                        step: nr,
                    },
                }
            };
            let run_block = |b: &Block| {
                let (i0, j0) = (b.row_panels.0 * mr, b.col_panels.0 * nr);
                let (mc, nc) = (
                    (b.row_panels.1 * mr).min(m - i0),
                    (b.col_panels.1 * nr).min(ns - j0),
                );
                let mut scratch = [0.0f32; MAX_TILE];
                for (jr, ir) in (0..nc)
                    .step_by(nr)
                    .flat_map(|jr| (0..mc).step_by(mr).map(move |ir| (jr, ir)))
                {
                    let a_rows = a_rows_at((i0 + ir) / mr, p0, kc);
                    let b_steps = b_steps_at((j0 + jr) / nr);
                    let (rows, cols) = (mr.min(mc - ir), nr.min(nc - jr));
                    // SAFETY: the tile's top-left element (i0+ir, s0+j0+jr) lies inside C.
                    let tile = unsafe { out.at((i0 + ir) * n + s0 + j0 + jr) };
                    if rows == mr && cols == nr {
                        // SAFETY: A's rows and B's steps hold kc steps (bounds-checked where
                        // they were made); the full tile is inside C (rows and cols fit) and
                        // belongs to this task alone; the ISA was checked by our caller.
                        unsafe { K::run(kc, a_rows, b_steps, tile, n, store) };
                    } else {
                        // SAFETY: as above, with the scratch tile (MR×NR, row stride NR) as
                        // output.
                        unsafe { K::run(kc, a_rows, b_steps, scratch.as_mut_ptr(), nr, true) };
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
            };
            if parallel && blocks.len() > 1 {
                blocks.par_iter().for_each(run_block);
            } else {
                blocks.iter().for_each(run_block);
            }
        }
    }
    give_back(slot_a, ap);
    give_back(slot_b, bp);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tile in exactly one block, blocks within the cache limits.
    fn covers(bs: &[Block], m_panels: usize, n_panels: usize, mr: usize, nr: usize) {
        let mut seen = vec![0u8; m_panels * n_panels];
        for b in bs {
            assert!(
                b.row_panels.1 * mr <= MC && b.col_panels.1 * nr <= NC,
                "{b:?}"
            );
            for i in b.row_panels.0..b.row_panels.0 + b.row_panels.1 {
                for j in b.col_panels.0..b.col_panels.0 + b.col_panels.1 {
                    seen[i * n_panels + j] += 1;
                }
            }
        }
        assert!(
            seen.iter().all(|&s| s == 1),
            "{m_panels}×{n_panels}: {bs:?}"
        );
    }

    #[test]
    fn blocks_cover_the_grid_and_balance_the_threads() {
        for (m_panels, n_panels) in [
            (1, 1),
            (11, 1),
            (22, 2),
            (43, 4),
            (86, 36),
            (86, 12),
            (171, 786),
        ] {
            for threads in [1, 2, 3, 4] {
                let bs = blocks(m_panels, n_panels, (6, 64), threads);
                covers(&bs, m_panels, n_panels, 6, 64);
                if threads == 1 {
                    assert_eq!(
                        bs.len(),
                        m_panels.div_ceil(MC / 6) * n_panels.div_ceil(NC / 64)
                    );
                } else if m_panels * n_panels >= threads {
                    assert_eq!(
                        bs.len() % threads,
                        0,
                        "{m_panels}×{n_panels} on {threads}: {}",
                        bs.len()
                    );
                }
                // Even cuts: block sizes along each dimension differ by at most one panel.
                let sizes: Vec<usize> = bs.iter().map(|b| b.row_panels.1).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            }
        }
    }
}
