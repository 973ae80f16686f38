//! cuBLAS, as the baseline the benchmarks compare ptm's matrix kernels with (cudarc's bindings,
//! loaded dynamically; an error, not a panic, where the library is missing).

use crate::device::{Buffer, Device};
use crate::error::{Error, Result};
use crate::ops::FloatType;
use cudarc::cublas::{result, sys};

/// A cuBLAS handle bound to a device's stream.
pub struct Cublas {
    handle: sys::cublasHandle_t,
    dev: Device,
}

impl Cublas {
    /// A handle on `dev`'s stream.
    pub fn new(dev: &Device) -> Result<Cublas> {
        // SAFETY: only probes whether one of cudarc's candidate names for libcublas loads.
        if !unsafe { sys::is_culib_present() } {
            return Err(Error::Unavailable(
                "cuBLAS (libcublas.so) is not installed".into(),
            ));
        }
        dev.synchronize()?;
        let handle = result::create_handle()
            .map_err(|e| Error::Unavailable(format!("cublasCreate: {e:?}")))?;
        // SAFETY: the handle was just created; the stream lives as long as `dev`, which we hold.
        unsafe { result::set_stream(handle, dev.stream().cu_stream() as sys::cudaStream_t) }
            .map_err(|e| Error::Unavailable(format!("cublasSetStream: {e:?}")))?;
        Ok(Cublas {
            handle,
            dev: dev.clone(),
        })
    }

    /// `c = a·b` for row-major `a` (m×k), `b` (k×n, or stored n×k when `b_stored_nk`, as a Linear
    /// weight), `c` (m×n); f32 accumulation (`CUBLAS_COMPUTE_32F`, no TF32 for f32).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm<T: FloatType>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &Buffer<T>,
        b: &Buffer<T>,
        b_stored_nk: bool,
        c: &mut Buffer<T>,
    ) -> Result<()> {
        if a.len() < m * k || b.len() < k * n || c.len() < m * n {
            return Err(Error::Invalid(format!(
                "cublas gemm {m}x{n}x{k}: buffers of {}, {}, {} elements",
                a.len(),
                b.len(),
                c.len()
            )));
        }
        let ty = match T::NAME {
            "f32" => sys::cudaDataType::CUDA_R_32F,
            "f16" => sys::cudaDataType::CUDA_R_16F,
            "bf16" => sys::cudaDataType::CUDA_R_16BF,
            other => return Err(Error::Invalid(format!("cublas gemm: no {other} path"))),
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: pass B first, with n as the row count. A
        // row-major k×n B is column-major n×k (op N, ld n); a stored n×k B is column-major k×n,
        // transposed (op T, ld k).
        // SAFETY: the pointers are live device buffers of at least the sizes passed (checked
        // above); alpha and beta are host f32, as COMPUTE_32F expects.
        unsafe {
            result::gemm_ex(
                self.handle,
                if b_stored_nk {
                    sys::cublasOperation_t::CUBLAS_OP_T
                } else {
                    sys::cublasOperation_t::CUBLAS_OP_N
                },
                sys::cublasOperation_t::CUBLAS_OP_N,
                n as i32,
                m as i32,
                k as i32,
                &alpha as *const f32 as *const _,
                b.ptr() as *const _,
                ty,
                if b_stored_nk { k as i32 } else { n as i32 },
                a.ptr() as *const _,
                ty,
                k as i32,
                &beta as *const f32 as *const _,
                c.ptr() as *mut _,
                ty,
                n as i32,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| Error::Invalid(format!("cublasGemmEx {m}x{n}x{k}: {e:?}")))
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.dev
    }
}

impl Drop for Cublas {
    fn drop(&mut self) {
        // SAFETY: the handle is live and dropped once.
        let _ = unsafe { result::destroy_handle(self.handle) };
    }
}
