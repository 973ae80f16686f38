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
