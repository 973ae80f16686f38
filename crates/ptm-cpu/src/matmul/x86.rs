//! Register-blocked f32 micro-kernels for x86-64: `C[MR×NR] (+)= Apanel · Bpanel`.
//!
//! A panel holds `k` steps of `MR` values of A (one column of the MR-row block per step); a B panel
//! holds `k` steps of `NR` values. Each step broadcasts the MR values of A and does 2·MR FMAs
//! against the NR values of B held in registers; the MR×NR accumulators never leave registers
//! until the end.

use super::pack::{ARows, BSteps, MicroKernel};
use std::arch::x86_64::*;

/// Requests the C tile's cache lines (`rows` rows of 64 f32, four lines each) into L1 at the start
/// of a tile, so its final read-modify-write does not wait on L2 or L3: the k-loop hides the
/// latency. A prefetch never faults; the addresses are inside the tile anyway.
#[inline(always)]
fn prefetch_tile(c: *const f32, ldc: usize, rows: usize) {
    for r in 0..rows {
        for q in 0..4 {
            let line = c.wrapping_add(r * ldc + 16 * q) as *const i8;
            // SAFETY: a prefetch is only a hint: it reads nothing architecturally and never
            // faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line) };
        }
    }
}

/// AVX-512: 6×64 tile in 24 zmm accumulators, + 4 zmm of B + 1 broadcast = 29 of 32 registers.
/// Six broadcasts feed 24 FMAs: on cores where a broadcast occupies an FP pipe (Zen 4), a 12×32
/// tile (one broadcast per two FMAs) measured ~25% slower.
pub(crate) struct Avx512;

impl MicroKernel for Avx512 {
    type Packed = f32;
    const MR: usize = 6;
    const NR: usize = 64;

    unsafe fn run(
        k: usize,
        a: ARows<f32>,
        b: BSteps<f32>,
        c: *mut f32,
        ldc: usize,
        overwrite: bool,
    ) {
        // SAFETY: forwarded contract (see `MicroKernel::run`); the caller chose this kernel only
        // after `Isa::Avx512.is_available()`.
        unsafe { avx512_6x64(k, a, b, c, ldc, overwrite) }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_6x64(
    k: usize,
    a: ARows<f32>,
    b: BSteps<f32>,
    c: *mut f32,
    ldc: usize,
    overwrite: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 4]; 6];
    if !overwrite {
        prefetch_tile(c, ldc, 6);
    }
    let rows = a.rows::<6>();
    // SAFETY: `a` reads k steps of 6 rows and `b` 64 readable f32s at each of k steps; `c`
    // points at 6 rows of 64 writable f32s spaced `ldc` apart (the `MicroKernel::run` contract).
    // Unaligned loads/stores are used.
    unsafe {
        for p in 0..k {
            let bp = b.ptr.add(p * b.step);
            let bv = [
                _mm512_loadu_ps(bp),
                _mm512_loadu_ps(bp.add(16)),
                _mm512_loadu_ps(bp.add(32)),
                _mm512_loadu_ps(bp.add(48)),
            ];
            let at = p * a.step;
            for (row, &ar) in acc.iter_mut().zip(&rows) {
                let ar = _mm512_set1_ps(*ar.add(at));
                for (x, &bq) in row.iter_mut().zip(&bv) {
                    *x = _mm512_fmadd_ps(ar, bq, *x);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let cr = c.add(r * ldc);
            for (q, x) in row.iter().enumerate() {
                let cq = cr.add(16 * q);
                if overwrite {
                    _mm512_storeu_ps(cq, *x);
                } else {
                    _mm512_storeu_ps(cq, _mm512_add_ps(_mm512_loadu_ps(cq), *x));
                }
            }
        }
    }
}

/// AVX2 + FMA: 6×16 tile in 12 ymm accumulators, + 2 ymm of B + 1 broadcast = 15 of 16 registers.
pub(crate) struct Avx2;

impl MicroKernel for Avx2 {
    type Packed = f32;
    const MR: usize = 6;
    const NR: usize = 16;

    unsafe fn run(
        k: usize,
        a: ARows<f32>,
        b: BSteps<f32>,
        c: *mut f32,
        ldc: usize,
        overwrite: bool,
    ) {
        // SAFETY: forwarded contract (see `MicroKernel::run`); the caller chose this kernel only
        // after `Isa::Avx2.is_available()` (AVX2 and FMA).
        unsafe { avx2_6x16(k, a, b, c, ldc, overwrite) }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_6x16(
    k: usize,
    a: ARows<f32>,
    b: BSteps<f32>,
    c: *mut f32,
    ldc: usize,
    overwrite: bool,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; 6];
    let rows = a.rows::<6>();
    // SAFETY: `a` reads k steps of 6 rows and `b` 16 readable f32s at each of k steps; `c`
    // points at 6 rows of 16 writable f32s spaced `ldc` apart (the `MicroKernel::run` contract).
    // Unaligned loads/stores are used.
    unsafe {
        for p in 0..k {
            let bp = b.ptr.add(p * b.step);
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            let at = p * a.step;
            for (row, &ar) in acc.iter_mut().zip(&rows) {
                let ar = _mm256_set1_ps(*ar.add(at));
                row[0] = _mm256_fmadd_ps(ar, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ar, b1, row[1]);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let cr = c.add(r * ldc);
            if overwrite {
                _mm256_storeu_ps(cr, row[0]);
                _mm256_storeu_ps(cr.add(8), row[1]);
            } else {
                _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), row[0]));
                _mm256_storeu_ps(cr.add(8), _mm256_add_ps(_mm256_loadu_ps(cr.add(8)), row[1]));
            }
        }
    }
}

/// AVX-512 BF16: the same 6×64 tile, each step a pair of k. A panel holds per step the six rows'
/// (a[i][2p], a[i][2p+1]) pairs, a B panel the 64 columns' (b[2p][j], b[2p+1][j]) pairs, each pair
/// one u32 (even k in the low half). `vdpbf16ps` multiplies 32 bf16 pairs and adds both products
/// into 16 f32 lanes: twice an FMA's work per instruction.
pub(crate) struct Avx512Bf16;

impl MicroKernel for Avx512Bf16 {
    type Packed = u32;
    const MR: usize = 6;
    const NR: usize = 64;

    unsafe fn run(
        steps: usize,
        a: ARows<u32>,
        b: BSteps<u32>,
        c: *mut f32,
        ldc: usize,
        overwrite: bool,
    ) {
        // SAFETY: forwarded contract (see `MicroKernel::run`); the caller chose this kernel only
        // after checking AVX-512F and AVX-512 BF16.
        unsafe { avx512bf16_6x64(steps, a, b, c, ldc, overwrite) }
    }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn avx512bf16_6x64(
    steps: usize,
    a: ARows<u32>,
    b: BSteps<u32>,
    c: *mut f32,
    ldc: usize,
    overwrite: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 4]; 6];
    if !overwrite {
        prefetch_tile(c, ldc, 6);
    }
    let rows = a.rows::<6>();
    // SAFETY: `a` reads `steps` steps of 6 rows and `b` 64 readable u32s at each step; `c`
    // points at 6 rows of 64 writable f32s spaced `ldc` apart (the `MicroKernel::run` contract).
    // Unaligned loads/stores.
    // The transmutes reinterpret 512 bits of packed bf16 pairs as the __m512bh the instruction
    // takes (same size, no invalid bit patterns).
    unsafe {
        for p in 0..steps {
            let bp = b.ptr.add(p * b.step);
            let bv: [__m512bh; 4] = [
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(bp as *const _)),
                std::mem::transmute::<__m512i, __m512bh>(
                    _mm512_loadu_si512(bp.add(16) as *const _),
                ),
                std::mem::transmute::<__m512i, __m512bh>(
                    _mm512_loadu_si512(bp.add(32) as *const _),
                ),
                std::mem::transmute::<__m512i, __m512bh>(
                    _mm512_loadu_si512(bp.add(48) as *const _),
                ),
            ];
            let at = p * a.step;
            for (row, &ar) in acc.iter_mut().zip(&rows) {
                let ar =
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*ar.add(at) as i32));
                for (x, &bq) in row.iter_mut().zip(&bv) {
                    *x = _mm512_dpbf16_ps(*x, ar, bq);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let cr = c.add(r * ldc);
            for (q, x) in row.iter().enumerate() {
                let cq = cr.add(16 * q);
                if overwrite {
                    _mm512_storeu_ps(cq, *x);
                } else {
                    _mm512_storeu_ps(cq, _mm512_add_ps(_mm512_loadu_ps(cq), *x));
                }
            }
        }
    }
}
