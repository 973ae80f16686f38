//! Third-party kernels behind safe, checked wrappers, for the benchmarks to compare against
//! (feature `bench-baselines`).

/// `C = A·B` for contiguous row-major f32 matrices through the `gemm` crate, on `threads` threads.
///
/// # Panics
/// If a slice is shorter than its matrix (benchmark inputs only; never user data).
pub fn gemm_crate_f32(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    threads: usize,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm_crate_f32: slices too short"
    );
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three pointers come from slices holding at least m*k, k*n and m*n elements
    // (checked above); the row-major strides (column stride 1, row stride k / n / n) keep every
    // access inside them; `c` is a unique borrow, so it aliases neither input; with
    // read_dst = false gemm writes C = beta·A·B without reading C.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `C = A·B` for contiguous row-major f32 matrices through the `matrixmultiply` crate, on one
/// thread (built without its `threading` feature).
///
/// # Panics
/// If a slice is shorter than its matrix (benchmark inputs only; never user data).
pub fn matrixmultiply_f32(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "matrixmultiply_f32: slices too short"
    );
    // SAFETY: the pointers come from slices holding at least m*k, k*n and m*n elements (checked
    // above) and the row-major strides (k, 1), (n, 1), (n, 1) keep every access inside them; `c`
    // is a unique borrow, so it aliases neither input; beta = 0 writes C without reading it.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// The machine's f32 multiply-add ceiling, measured: runs `rounds` rounds of 16 independent
/// chains of vector FMAs (AVX-512 where the CPU has it, else AVX2 + FMA) on the calling thread,
/// with nothing else in the loop, and returns the floating-point operations done (2 per lane per
/// FMA); time the call to get the rate. `None` where the CPU has neither instruction set. Sixteen
/// chains cover the FMA latency on current cores (4–5 cycles at 2 FMAs per cycle needs 10).
pub fn fma_peak_f32(rounds: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::Isa::Avx512.is_available() {
            // SAFETY: AVX-512F was detected just above.
            return Some(unsafe { fma_chains_avx512(rounds) });
        }
        if crate::Isa::Avx2.is_available() {
            // SAFETY: AVX2 and FMA were detected just above.
            return Some(unsafe { fma_chains_avx2(rounds) });
        }
    }
    let _ = rounds;
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_chains_avx512(rounds: usize) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(1.0); 16];
    let (b, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..rounds {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, b, c);
        }
    }
    std::hint::black_box(&acc);
    rounds as f64 * 16.0 * 32.0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_chains_avx2(rounds: usize) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(1.0); 16];
    let (b, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..rounds {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, b, c);
        }
    }
    std::hint::black_box(&acc);
    rounds as f64 * 16.0 * 16.0
}
