//! The CUDA backend (feature `cuda`): tensor storage in GPU memory and the ops that run there on
//! ptm-cuda's kernels. Every op of `ops/` has a path here; no op silently copies values to the
//! host (index tensors are read there to be validated, and seeded random values are drawn there).
//!
//! Devices are opened once per process and kept (`open_gpu`). Values created from seeded random
//! streams (`rand`, `randn`, `dropout`) are drawn on the host and uploaded, so a seed gives the
//! same numbers on every device.

use crate::error::{Error, Result};
use crate::op::{BinaryOp, Op, ReduceOp, UnaryOp};
use crate::storage::{CpuStorage, Storage};
use crate::{DType, Device, Layout, Shape, Tensor};
use half::{bf16, f16};
use ptm_cuda::ops::elementwise::{self as ew, Binary, Unary};
use ptm_cuda::ops::matmul::{gemm, Gemm, Operand};
use ptm_cuda::ops::rows;
use ptm_cuda::{Buffer, Device as Gpu};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// GPU `n`, opened at first use and kept for the process.
pub(crate) fn open_gpu(n: usize) -> Result<Gpu> {
    static OPEN: OnceLock<Mutex<HashMap<usize, Gpu>>> = OnceLock::new();
    let mut open = OPEN
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .map_err(|_| dev_err(n, "device registry poisoned"))?;
    if let Some(d) = open.get(&n) {
        return Ok(d.clone());
    }
    let d = Gpu::new(n).map_err(|e| dev_err(n, e))?;
    open.insert(n, d.clone());
    Ok(d)
}

fn dev_err(n: usize, e: impl std::fmt::Display) -> Error {
    Error::Device {
        device: format!("cuda:{n}"),
        msg: e.to_string(),
    }
}

fn kernel_err(gpu: &Gpu, e: ptm_cuda::Error) -> Error {
    dev_err(gpu.ordinal(), e)
}

/// A typed device buffer.
pub(crate) enum CudaBuf {
    F32(Buffer<f32>),
    F64(Buffer<f64>),
    F16(Buffer<f16>),
    BF16(Buffer<bf16>),
    U32(Buffer<u32>),
    I64(Buffer<i64>),
}

/// A tensor's elements in GPU memory.
pub(crate) struct CudaStorage {
    pub(crate) buf: CudaBuf,
    pub(crate) gpu: Gpu,
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaStorage({:?}, {} elements, {:?})",
            self.dtype(),
            self.len(),
            self.gpu
        )
    }
}

macro_rules! each_buf {
    ($buf:expr, $b:ident => $body:expr) => {
        match $buf {
            CudaBuf::F32($b) => $body,
            CudaBuf::F64($b) => $body,
            CudaBuf::F16($b) => $body,
            CudaBuf::BF16($b) => $body,
            CudaBuf::U32($b) => $body,
            CudaBuf::I64($b) => $body,
        }
    };
}

/// Runs `$body` with `$b` bound to the buffer (any dtype), wrapping the result buffer back in the
/// same variant.
macro_rules! map_buf {
    ($buf:expr, $b:ident => $body:expr) => {
        match $buf {
            CudaBuf::F32($b) => CudaBuf::F32($body),
            CudaBuf::F64($b) => CudaBuf::F64($body),
            CudaBuf::F16($b) => CudaBuf::F16($body),
            CudaBuf::BF16($b) => CudaBuf::BF16($body),
            CudaBuf::U32($b) => CudaBuf::U32($body),
            CudaBuf::I64($b) => CudaBuf::I64($body),
        }
    };
}

/// Runs `$body` with `$b` bound to a float buffer, wrapping the result buffer back in the same
/// variant; integer buffers are an unsupported-dtype error naming `$op`.
macro_rules! float_buf {
    ($buf:expr, $op:expr, $b:ident => $body:expr) => {
        match $buf {
            CudaBuf::F32($b) => CudaBuf::F32($body),
            CudaBuf::F64($b) => CudaBuf::F64($body),
            CudaBuf::F16($b) => CudaBuf::F16($body),
            CudaBuf::BF16($b) => CudaBuf::BF16($body),
            other => {
                return Err(Error::UnsupportedDType {
                    op: $op,
                    dtype: other.dtype(),
                    note: "needs a float dtype".into(),
                })
            }
        }
    };
}

impl CudaBuf {
    fn dtype(&self) -> DType {
        match self {
            CudaBuf::F32(_) => DType::F32,
            CudaBuf::F64(_) => DType::F64,
            CudaBuf::F16(_) => DType::F16,
            CudaBuf::BF16(_) => DType::BF16,
            CudaBuf::U32(_) => DType::U32,
            CudaBuf::I64(_) => DType::I64,
        }
    }
}

impl CudaStorage {
    pub(crate) fn dtype(&self) -> DType {
        self.buf.dtype()
    }

    pub(crate) fn len(&self) -> usize {
        each_buf!(&self.buf, b => b.len())
    }

    pub(crate) fn ordinal(&self) -> usize {
        self.gpu.ordinal()
    }

    /// The whole buffer copied to the host.
    pub(crate) fn download(&self) -> Result<CpuStorage> {
        let e = |e| kernel_err(&self.gpu, e);
        Ok(match &self.buf {
            CudaBuf::F32(b) => CpuStorage::F32(b.to_vec().map_err(e)?),
            CudaBuf::F64(b) => CpuStorage::F64(b.to_vec().map_err(e)?),
            CudaBuf::F16(b) => CpuStorage::F16(b.to_vec().map_err(e)?),
            CudaBuf::BF16(b) => CpuStorage::BF16(b.to_vec().map_err(e)?),
            CudaBuf::U32(b) => CpuStorage::U32(b.to_vec().map_err(e)?),
            CudaBuf::I64(b) => CpuStorage::I64(b.to_vec().map_err(e)?),
        })
    }

    /// A copy of `cpu` (whole buffer) on `gpu`.
    pub(crate) fn upload(cpu: &CpuStorage, gpu: &Gpu) -> Result<CudaStorage> {
        let e = |e| kernel_err(gpu, e);
        let buf = match cpu {
            CpuStorage::F32(v) => CudaBuf::F32(gpu.upload(v).map_err(e)?),
            CpuStorage::F64(v) => CudaBuf::F64(gpu.upload(v).map_err(e)?),
            CpuStorage::F16(v) => CudaBuf::F16(gpu.upload(v).map_err(e)?),
            CpuStorage::BF16(v) => CudaBuf::BF16(gpu.upload(v).map_err(e)?),
            CpuStorage::U32(v) => CudaBuf::U32(gpu.upload(v).map_err(e)?),
            CpuStorage::I64(v) => CudaBuf::I64(gpu.upload(v).map_err(e)?),
        };
        Ok(CudaStorage {
            buf,
            gpu: gpu.clone(),
        })
    }
}

/// `value` in every element, on GPU `n`.
pub(crate) fn full(value: f64, shape: Shape, dtype: DType, n: usize) -> Result<Tensor> {
    let gpu = open_gpu(n)?;
    let len = shape.elem_count();
    let e = |e| kernel_err(&gpu, e);
    let buf = match dtype {
        DType::F32 => CudaBuf::F32(filled(&gpu, len, value).map_err(e)?),
        DType::F64 => CudaBuf::F64(filled(&gpu, len, value).map_err(e)?),
        DType::F16 => CudaBuf::F16(filled(&gpu, len, value).map_err(e)?),
        DType::BF16 => CudaBuf::BF16(filled(&gpu, len, value).map_err(e)?),
        // Integer fills are rare (ids, masks): build them on the host.
        DType::U32 => CudaBuf::U32(gpu.upload(&vec![value as u32; len]).map_err(e)?),
        DType::I64 => CudaBuf::I64(gpu.upload(&vec![value as i64; len]).map_err(e)?),
    };
    Ok(Tensor::from_any_storage(
        Storage::Cuda(CudaStorage { buf, gpu }),
        shape,
        None,
    ))
}

fn filled<T: ptm_cuda::ops::FloatType>(
    gpu: &Gpu,
    len: usize,
    v: f64,
) -> ptm_cuda::Result<Buffer<T>> {
    let mut b = gpu.alloc::<T>(len)?;
    ew::fill(&mut b, v)?;
    Ok(b)
}

/// `t` on `device`: the same tensor when already there, else a copy (CPU views are gathered
/// first; device tensors come back whole, keeping their view). Not recorded for autograd.
pub(crate) fn to_device(t: &Tensor, device: &Device) -> Result<Tensor> {
    if t.device() == *device {
        return Ok(t.clone());
    }
    match (t.any_storage(), device) {
        (Storage::Cpu(_), Device::Cuda(n)) => {
            let gpu = open_gpu(*n)?;
            let host = t.contiguous_storage("to_device")?;
            let s = CudaStorage::upload(&host, &gpu)?;
            Ok(Tensor::from_any_storage(
                Storage::Cuda(s),
                t.shape().clone(),
                None,
            ))
        }
        (Storage::Cuda(s), Device::Cpu) => {
            let host = s.download()?;
            Ok(Tensor::from_storage(
                host.gather(t.layout()),
                t.shape().clone(),
                None,
            ))
        }
        (Storage::Cuda(_), Device::Cuda(_)) => {
            // Between GPUs through the host (peer copies can come later).
            to_device(&to_device(t, &Device::Cpu)?, device)
        }
        (Storage::Cpu(_), Device::Cpu) => Ok(t.clone()),
    }
}

/// `x` when its storage holds exactly its elements in order (offset 0, nothing else), else a
/// contiguous copy: kernels that take whole buffers need that.
fn dense(x: &Tensor) -> Result<Tensor> {
    let l = x.layout();
    if l.is_contiguous() && l.offset() == 0 && x.any_storage().len() == x.elem_count() {
        Ok(x.clone())
    } else {
        contiguous(&x.detach())
    }
}

/// The kernels' strided view of a tensor layout.
fn klayout(l: &Layout) -> Result<ptm_cuda::Layout> {
    let strides: Vec<isize> = l.strides().iter().map(|&s| s as isize).collect();
    ptm_cuda::Layout::strided(l.dims(), &strides, l.offset()).map_err(|e| Error::InvalidArgument {
        op: "cuda",
        msg: e.to_string(),
    })
}

fn cuda_of<'a>(t: &'a Tensor, op: &'static str) -> Result<&'a CudaStorage> {
    match t.any_storage() {
        Storage::Cuda(s) => Ok(s),
        Storage::Cpu(_) => Err(Error::DeviceMismatch {
            op,
            lhs: "cuda".into(),
            rhs: "cpu".into(),
        }),
    }
}

fn same_gpu(a: &CudaStorage, b: &CudaStorage, op: &'static str) -> Result<()> {
    if a.ordinal() == b.ordinal() {
        Ok(())
    } else {
        Err(Error::DeviceMismatch {
            op,
            lhs: format!("cuda:{}", a.ordinal()),
            rhs: format!("cuda:{}", b.ordinal()),
        })
    }
}

fn wrap(gpu: &Gpu, buf: CudaBuf, shape: Shape, op: Option<Op>) -> Tensor {
    Tensor::from_any_storage(
        Storage::Cuda(CudaStorage {
            buf,
            gpu: gpu.clone(),
        }),
        shape,
        op,
    )
}

fn unary_code(op: UnaryOp) -> (Unary, f64) {
    match op {
        UnaryOp::Neg => (Unary::Neg, 0.0),
        UnaryOp::Abs => (Unary::Abs, 0.0),
        UnaryOp::Sign => (Unary::Sign, 0.0),
        UnaryOp::Exp => (Unary::Exp, 0.0),
        UnaryOp::Log => (Unary::Log, 0.0),
        UnaryOp::Sqrt => (Unary::Sqrt, 0.0),
        UnaryOp::Rsqrt => (Unary::Rsqrt, 0.0),
        UnaryOp::PowF(e) => (Unary::PowF, e),
        UnaryOp::Tanh => (Unary::Tanh, 0.0),
        UnaryOp::Sigmoid => (Unary::Sigmoid, 0.0),
        UnaryOp::Relu => (Unary::Relu, 0.0),
        UnaryOp::GeluTanh => (Unary::GeluTanh, 0.0),
        UnaryOp::GeluErf => (Unary::GeluErf, 0.0),
        UnaryOp::Silu => (Unary::Silu, 0.0),
        UnaryOp::AddScalar(c) => (Unary::AddScalar, c),
        UnaryOp::MulScalar(c) => (Unary::MulScalar, c),
    }
}

/// `op(x)` elementwise, read through x's view.
pub(crate) fn unary(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let s = cuda_of(x, op.name())?;
    let (code, p) = unary_code(op);
    let l = klayout(x.layout())?;
    let n = x.elem_count();
    let ke = |e| kernel_err(&s.gpu, e);
    let buf = float_buf!(&s.buf, op.name(), b => {
        let mut y = s.gpu.alloc(n).map_err(ke)?;
        ew::unary(code, p, b, &l, &mut y).map_err(ke)?;
        y
    });
    Ok(wrap(
        &s.gpu,
        buf,
        x.shape().clone(),
        Some(Op::Unary(x.clone(), op)),
    ))
}

/// d op(x)/dx elementwise (the backward of GELU and SiLU).
pub(crate) fn elementwise_grad(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    let x = dense(x)?;
    let s = cuda_of(&x, op.name())?;
    let (code, p) = unary_code(op);
    let n = x.elem_count();
    let ke = |e| kernel_err(&s.gpu, e);
    let buf = float_buf!(&s.buf, op.name(), b => {
        let mut ones = s.gpu.alloc(n).map_err(ke)?;
        ew::fill(&mut ones, 1.0).map_err(ke)?;
        let mut dx = s.gpu.alloc(n).map_err(ke)?;
        ew::unary_bwd(code, p, b, &ones, &mut dx, false).map_err(ke)?;
        dx
    });
    Ok(wrap(&s.gpu, buf, x.shape().clone(), None))
}

/// `a op b` with both views already broadcast to `shape`.
pub(crate) fn binary(
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    op: BinaryOp,
    name: &'static str,
) -> Result<Tensor> {
    let (sa, sb) = (cuda_of(a, name)?, cuda_of(b, name)?);
    same_gpu(sa, sb, name)?;
    let code = match op {
        BinaryOp::Add => Binary::Add,
        BinaryOp::Sub => Binary::Sub,
        BinaryOp::Mul => Binary::Mul,
        BinaryOp::Div => Binary::Div,
        BinaryOp::Maximum => Binary::Maximum,
        BinaryOp::Minimum => Binary::Minimum,
    };
    let (kla, klb) = (klayout(la)?, klayout(lb)?);
    let n = la.shape().elem_count();
    let ke = |e| kernel_err(&sa.gpu, e);
    let buf = match (&sa.buf, &sb.buf) {
        (CudaBuf::F32(x), CudaBuf::F32(y)) => {
            CudaBuf::F32(binary_typed(&sa.gpu, code, x, &kla, y, &klb, n).map_err(ke)?)
        }
        (CudaBuf::F64(x), CudaBuf::F64(y)) => {
            CudaBuf::F64(binary_typed(&sa.gpu, code, x, &kla, y, &klb, n).map_err(ke)?)
        }
        (CudaBuf::F16(x), CudaBuf::F16(y)) => {
            CudaBuf::F16(binary_typed(&sa.gpu, code, x, &kla, y, &klb, n).map_err(ke)?)
        }
        (CudaBuf::BF16(x), CudaBuf::BF16(y)) => {
            CudaBuf::BF16(binary_typed(&sa.gpu, code, x, &kla, y, &klb, n).map_err(ke)?)
        }
        (CudaBuf::U32(x), CudaBuf::U32(y)) => {
            CudaBuf::U32(binary_typed(&sa.gpu, code, x, &kla, y, &klb, n).map_err(ke)?)
        }
        (CudaBuf::I64(x), CudaBuf::I64(y)) => {
            CudaBuf::I64(binary_typed(&sa.gpu, code, x, &kla, y, &klb, n).map_err(ke)?)
        }
        (x, y) => {
            return Err(Error::DTypeMismatch {
                op: name,
                lhs: x.dtype(),
                rhs: y.dtype(),
            })
        }
    };
    Ok(wrap(
        &sa.gpu,
        buf,
        la.shape().clone(),
        Some(Op::Binary(a.clone(), b.clone(), op)),
    ))
}

fn binary_typed<T: ptm_cuda::ops::Numeric>(
    gpu: &Gpu,
    code: Binary,
    a: &Buffer<T>,
    la: &ptm_cuda::Layout,
    b: &Buffer<T>,
    lb: &ptm_cuda::Layout,
    n: usize,
) -> ptm_cuda::Result<Buffer<T>> {
    let mut y = gpu.alloc(n)?;
    ew::binary(code, a, la, b, lb, &mut y)?;
    Ok(y)
}

/// A contiguous copy of x's view.
pub(crate) fn contiguous(x: &Tensor) -> Result<Tensor> {
    let s = cuda_of(x, "contiguous")?;
    let l = klayout(x.layout())?;
    let n = x.elem_count();
    let ke = |e| kernel_err(&s.gpu, e);
    let buf = map_buf!(&s.buf, b => {
        let mut y = s.gpu.alloc(n).map_err(ke)?;
        ew::copy(b, &l, &mut y).map_err(ke)?;
        y
    });
    Ok(wrap(
        &s.gpu,
        buf,
        x.shape().clone(),
        Some(Op::Copy(x.clone())),
    ))
}

/// x converted to `dtype`: between floats, round to nearest even; where an integer is involved,
/// as the CPU path (Rust's `as` through f64). Gradients flow through float → float casts.
pub(crate) fn to_dtype(x0: &Tensor, dtype: DType) -> Result<Tensor> {
    let x = dense(x0)?;
    let s = cuda_of(&x, "to_dtype")?;
    let n = x.elem_count();
    let ke = |e| kernel_err(&s.gpu, e);
    macro_rules! to {
        ($src:expr) => {
            match dtype {
                DType::F32 => CudaBuf::F32(cast_to(&s.gpu, $src, n).map_err(ke)?),
                DType::F64 => CudaBuf::F64(cast_to(&s.gpu, $src, n).map_err(ke)?),
                DType::F16 => CudaBuf::F16(cast_to(&s.gpu, $src, n).map_err(ke)?),
                DType::BF16 => CudaBuf::BF16(cast_to(&s.gpu, $src, n).map_err(ke)?),
                DType::U32 => CudaBuf::U32(cast_to(&s.gpu, $src, n).map_err(ke)?),
                DType::I64 => CudaBuf::I64(cast_to(&s.gpu, $src, n).map_err(ke)?),
            }
        };
    }
    let buf = each_buf!(&s.buf, b => to!(b));
    let op = (dtype.is_float() && x0.dtype().is_float()).then(|| Op::Cast(x0.clone()));
    Ok(wrap(&s.gpu, buf, x.shape().clone(), op))
}

fn cast_to<S: ptm_cuda::ops::Numeric, D: ptm_cuda::ops::Numeric>(
    gpu: &Gpu,
    x: &Buffer<S>,
    n: usize,
) -> ptm_cuda::Result<Buffer<D>> {
    let mut y = gpu.alloc(n)?;
    debug_assert_eq!(x.len(), n);
    ew::cast(x, &mut y)?;
    Ok(y)
}

/// `a @ b` over the last two dims with the batch dims broadcast (`la`, `lb` already broadcast to
/// `[batch.., m, k]` and `[batch.., k, n]`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    m: usize,
    n: usize,
    k: usize,
    out_shape: Shape,
) -> Result<Tensor> {
    let (sa, sb) = (cuda_of(a, "matmul")?, cuda_of(b, "matmul")?);
    same_gpu(sa, sb, "matmul")?;
    let nb = la.dims().len() - 2;
    let batch: usize = la.dims()[..nb].iter().product();
    // One launch when every batch dim collapses to a single stride per operand (contiguous
    // batches, or one broadcast operand); else one launch per entry.
    let flat = |l: &Layout| -> Option<usize> {
        let (d, s) = (&l.dims()[..nb], &l.strides()[..nb]);
        let mut stride = None;
        let mut expect = 0usize;
        for i in (0..nb).rev() {
            if d[i] == 1 {
                continue;
            }
            match stride {
                None => {
                    stride = Some(s[i]);
                    expect = s[i] * d[i];
                }
                Some(_) if s[i] == expect => expect *= d[i],
                _ => return None,
            }
        }
        Some(stride.unwrap_or(0))
    };
    let ke = |e| kernel_err(&sa.gpu, e);
    let entries: Vec<(usize, usize)> = match (flat(la), flat(lb)) {
        (Some(x), Some(y)) => vec![(x, y)],
        _ => vec![],
    };
    macro_rules! run {
        ($x:expr, $y:expr) => {{
            let mut c = sa.gpu.alloc(batch * m * n).map_err(ke)?;
            let op = |buf, l: &Layout, off: usize, bs: usize| Operand {
                buf,
                offset: off,
                row_stride: l.strides()[nb],
                col_stride: l.strides()[nb + 1],
                batch_stride: bs,
            };
            if let Some(&(sa_b, sb_b)) = entries.first() {
                let g = Gemm {
                    batch,
                    m,
                    n,
                    k,
                    alpha: 1.0,
                    beta: 0.0,
                };
                gemm(
                    &g,
                    op($x, la, la.offset(), sa_b),
                    op($y, lb, lb.offset(), sb_b),
                    &mut c,
                    0,
                    n,
                    m * n,
                    None,
                    false,
                )
                .map_err(ke)?;
            } else {
                let g = Gemm {
                    batch: 1,
                    m,
                    n,
                    k,
                    alpha: 1.0,
                    beta: 0.0,
                };
                let mut idx = vec![0usize; nb];
                for e in 0..batch {
                    let (mut oa, mut ob) = (la.offset(), lb.offset());
                    for d in 0..nb {
                        oa += idx[d] * la.strides()[d];
                        ob += idx[d] * lb.strides()[d];
                    }
                    gemm(
                        &g,
                        op($x, la, oa, 0),
                        op($y, lb, ob, 0),
                        &mut c,
                        e * m * n,
                        n,
                        m * n,
                        None,
                        false,
                    )
                    .map_err(ke)?;
                    for d in (0..nb).rev() {
                        idx[d] += 1;
                        if idx[d] < la.dims()[d] {
                            break;
                        }
                        idx[d] = 0;
                    }
                }
            }
            c
        }};
    }
    let buf = match (&sa.buf, &sb.buf) {
        (CudaBuf::F32(x), CudaBuf::F32(y)) => CudaBuf::F32(run!(x, y)),
        (CudaBuf::F64(x), CudaBuf::F64(y)) => CudaBuf::F64(run!(x, y)),
        (CudaBuf::F16(x), CudaBuf::F16(y)) => CudaBuf::F16(run!(x, y)),
        (CudaBuf::BF16(x), CudaBuf::BF16(y)) => CudaBuf::BF16(run!(x, y)),
        (x, _) => {
            return Err(Error::UnsupportedDType {
                op: "matmul",
                dtype: x.dtype(),
                note: "needs a float dtype".into(),
            })
        }
    };
    Ok(wrap(
        &sa.gpu,
        buf,
        out_shape,
        Some(Op::Matmul(a.clone(), b.clone())),
    ))
}

/// Sum / max / min over `dims` (sorted, unique), keeping them as size 1 (integers exact, sums
/// wrapping).
pub(crate) fn reduce(
    x: &Tensor,
    op: ReduceOp,
    dims: &[usize],
    name: &'static str,
) -> Result<Tensor> {
    // Move the reduced dims last, make the rows contiguous, reduce each row.
    let kept: Vec<usize> = (0..x.rank()).filter(|d| !dims.contains(d)).collect();
    let perm: Vec<usize> = kept.iter().copied().chain(dims.iter().copied()).collect();
    let rows_t = dense(&x.detach().permute(&perm)?)?;
    let row: usize = dims.iter().map(|&d| x.dims()[d]).product();
    let rows = x
        .elem_count()
        .checked_div(row)
        .unwrap_or_else(|| kept.iter().map(|&d| x.dims()[d]).product());
    let s = cuda_of(&rows_t, name)?;
    let code = match op {
        ReduceOp::Sum => rows::Reduce::Sum,
        ReduceOp::Max => rows::Reduce::Max,
        ReduceOp::Min => rows::Reduce::Min,
    };
    let ke = |e| kernel_err(&s.gpu, e);
    let buf = map_buf!(&s.buf, b => {
        let mut y = s.gpu.alloc(rows).map_err(ke)?;
        rows::reduce_rows(code, b, row, &mut y).map_err(ke)?;
        y
    });
    let mut out_dims = x.dims().to_vec();
    for &d in dims {
        out_dims[d] = 1;
    }
    Ok(wrap(
        &s.gpu,
        buf,
        out_dims.into(),
        Some(Op::Reduce(x.clone(), op, dims.to_vec())),
    ))
}

/// Index of the largest entry along `d` (the first on ties, a NaN counting as the largest), as
/// i64 with `d` removed.
pub(crate) fn argmax(x: &Tensor, d: usize) -> Result<Tensor> {
    let name = "argmax";
    let mut perm: Vec<usize> = (0..x.rank()).filter(|&i| i != d).collect();
    perm.push(d);
    let rows_t = dense(&x.detach().permute(&perm)?)?;
    let s = cuda_of(&rows_t, name)?;
    let n = x.dims()[d];
    let rows = x.elem_count() / n;
    let ke = |e| kernel_err(&s.gpu, e);
    let mut out = s.gpu.alloc::<i64>(rows).map_err(ke)?;
    each_buf!(&s.buf, b => rows::arg_rows(true, b, n, &mut out).map_err(ke)?);
    let mut dims = x.dims().to_vec();
    dims.remove(d);
    Ok(wrap(&s.gpu, CudaBuf::I64(out), dims.into(), None))
}

/// Softmax (or log-softmax) over the last dim of a contiguous tensor.
pub(crate) fn softmax_last(x0: &Tensor, log: bool) -> Result<Tensor> {
    let name = if log { "log_softmax" } else { "softmax" };
    let x = dense(x0)?;
    let s = cuda_of(&x, name)?;
    let n = *x.dims().last().unwrap_or(&1);
    let len = x.elem_count();
    let ke = |e| kernel_err(&s.gpu, e);
    let buf = float_buf!(&s.buf, name, b => {
        let mut y = s.gpu.alloc(len).map_err(ke)?;
        rows::softmax_fwd(b, &mut y, n, log).map_err(ke)?;
        y
    });
    let op = if log {
        Op::LogSoftmax(x0.clone())
    } else {
        Op::Softmax(x0.clone())
    };
    Ok(wrap(&s.gpu, buf, x.shape().clone(), Some(op)))
}

/// The backward of [`softmax_last`] from its output `y` and the gradient `g`.
pub(crate) fn softmax_last_backward(y: &Tensor, g: &Tensor, log: bool) -> Result<Tensor> {
    let name = if log {
        "log_softmax_backward"
    } else {
        "softmax_backward"
    };
    let (y, g) = (dense(y)?, dense(g)?);
    let (sy, sg) = (cuda_of(&y, name)?, cuda_of(&g, name)?);
    same_gpu(sy, sg, name)?;
    let n = *y.dims().last().unwrap_or(&1);
    let len = y.elem_count();
    let ke = |e| kernel_err(&sy.gpu, e);
    let buf = match (&sy.buf, &sg.buf) {
        (CudaBuf::F32(a), CudaBuf::F32(b)) => {
            CudaBuf::F32(softmax_bwd_typed(&sy.gpu, a, b, len, n, log).map_err(ke)?)
        }
        (CudaBuf::F64(a), CudaBuf::F64(b)) => {
            CudaBuf::F64(softmax_bwd_typed(&sy.gpu, a, b, len, n, log).map_err(ke)?)
        }
        (CudaBuf::F16(a), CudaBuf::F16(b)) => {
            CudaBuf::F16(softmax_bwd_typed(&sy.gpu, a, b, len, n, log).map_err(ke)?)
        }
        (CudaBuf::BF16(a), CudaBuf::BF16(b)) => {
            CudaBuf::BF16(softmax_bwd_typed(&sy.gpu, a, b, len, n, log).map_err(ke)?)
        }
        (x, _) => {
            return Err(Error::UnsupportedDType {
                op: name,
                dtype: x.dtype(),
                note: "needs a float dtype".into(),
            })
        }
    };
    Ok(wrap(&sy.gpu, buf, y.shape().clone(), None))
}

fn softmax_bwd_typed<T: ptm_cuda::ops::FloatType>(
    gpu: &Gpu,
    y: &Buffer<T>,
    g: &Buffer<T>,
    len: usize,
    n: usize,
    log: bool,
) -> ptm_cuda::Result<Buffer<T>> {
    let mut dx = gpu.alloc(len)?;
    rows::softmax_bwd(y, g, &mut dx, n, log, false)?;
    Ok(dx)
}

/// `dense` for optional parameters.
fn dense_opt(t: Option<&Tensor>) -> Result<Option<Tensor>> {
    t.map(dense).transpose()
}

/// A float buffer's typed view for a kernel that takes one element type `T`.
trait Typed<T: ptm_cuda::ops::FloatType> {
    fn typed(&self, op: &'static str) -> Result<&Buffer<T>>;
}

macro_rules! typed {
    ($t:ty, $v:ident) => {
        impl Typed<$t> for CudaStorage {
            fn typed(&self, op: &'static str) -> Result<&Buffer<$t>> {
                match &self.buf {
                    CudaBuf::$v(b) => Ok(b),
                    other => Err(Error::DTypeMismatch {
                        op,
                        lhs: other.dtype(),
                        rhs: DType::$v,
                    }),
                }
            }
        }
    };
}
typed!(f32, F32);
typed!(f64, F64);
typed!(f16, F16);
typed!(bf16, BF16);

/// Runs `$body` with `T` set to the element type of the float tensor storage `$s`, wrapping the
/// buffer it returns in the matching variant.
macro_rules! with_float {
    ($s:expr, $op:expr, $t:ident => $body:expr) => {
        match $s.dtype() {
            DType::F32 => {
                type $t = f32;
                CudaBuf::F32($body)
            }
            DType::F64 => {
                type $t = f64;
                CudaBuf::F64($body)
            }
            DType::F16 => {
                type $t = f16;
                CudaBuf::F16($body)
            }
            DType::BF16 => {
                type $t = bf16;
                CudaBuf::BF16($body)
            }
            d => {
                return Err(Error::UnsupportedDType {
                    op: $op,
                    dtype: d,
                    note: "needs a float dtype".into(),
                })
            }
        }
    };
}

/// Layer norm over the last dim (`weight`, `bias` of `[d]`, already checked).
pub(crate) fn layer_norm(
    x0: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let name = "layer_norm";
    let x = dense(x0)?;
    let (w, b) = (dense_opt(weight)?, dense_opt(bias)?);
    let s = cuda_of(&x, name)?;
    for p in [&w, &b].into_iter().flatten() {
        same_gpu(s, cuda_of(p, name)?, name)?;
    }
    let d = *x.dims().last().unwrap_or(&1);
    let ke = |e| kernel_err(&s.gpu, e);
    let buf = with_float!(s, name, T => {
        let xb: &Buffer<T> = s.typed(name)?;
        let wb: Option<&Buffer<T>> = w.as_ref().map(|t| cuda_of(t, name)?.typed(name)).transpose()?;
        let bb: Option<&Buffer<T>> = b.as_ref().map(|t| cuda_of(t, name)?.typed(name)).transpose()?;
        let mut y = s.gpu.alloc::<T>(x.elem_count()).map_err(ke)?;
        rows::layer_norm_fwd(xb, wb, bb, eps, d, &mut y).map_err(ke)?;
        y
    });
    let op = Op::LayerNorm {
        x: x0.clone(),
        weight: weight.cloned(),
        bias: bias.cloned(),
        eps,
    };
    Ok(wrap(&s.gpu, buf, x.shape().clone(), Some(op)))
}

/// The backward of [`layer_norm`]: (dx, dw, db); the statistics are recomputed.
pub(crate) fn layer_norm_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    eps: f64,
    g: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let name = "layer_norm_backward";
    let (x, g, w) = (dense(x)?, dense(g)?, dense_opt(weight)?);
    let s = cuda_of(&x, name)?;
    same_gpu(s, cuda_of(&g, name)?, name)?;
    let d = *x.dims().last().unwrap_or(&1);
    let n = x.elem_count();
    let ke = |e| kernel_err(&s.gpu, e);
    let mut parts: Vec<CudaBuf> = Vec::with_capacity(3);
    macro_rules! run {
        ($t:ty, $v:ident) => {{
            let xb: &Buffer<$t> = s.typed(name)?;
            let gb: &Buffer<$t> = cuda_of(&g, name)?.typed(name)?;
            let wb: Option<&Buffer<$t>> = w
                .as_ref()
                .map(|t| cuda_of(t, name)?.typed(name))
                .transpose()?;
            let mut scratch = s.gpu.alloc::<$t>(n).map_err(ke)?;
            let stats = rows::layer_norm_fwd(xb, wb, None, eps, d, &mut scratch).map_err(ke)?;
            let (mut dx, mut dw, mut db) = (
                s.gpu.alloc::<$t>(n).map_err(ke)?,
                s.gpu.alloc::<$t>(d).map_err(ke)?,
                s.gpu.alloc::<$t>(d).map_err(ke)?,
            );
            rows::layer_norm_bwd(
                xb,
                wb,
                &stats,
                gb,
                d,
                &mut dx,
                Some(&mut dw),
                Some(&mut db),
                false,
            )
            .map_err(ke)?;
            parts.push(CudaBuf::$v(dx));
            parts.push(CudaBuf::$v(dw));
            parts.push(CudaBuf::$v(db));
        }};
    }
    match s.dtype() {
        DType::F32 => run!(f32, F32),
        DType::F64 => run!(f64, F64),
        DType::F16 => run!(f16, F16),
        DType::BF16 => run!(bf16, BF16),
        other => {
            return Err(Error::UnsupportedDType {
                op: name,
                dtype: other,
                note: "needs a float dtype".into(),
            })
        }
    }
    let db = parts.pop().expect("three parts");
    let dw = parts.pop().expect("three parts");
    let dx = parts.pop().expect("three parts");
    Ok((
        wrap(&s.gpu, dx, x.shape().clone(), None),
        wrap(&s.gpu, dw, vec![d].into(), None),
        wrap(&s.gpu, db, vec![d].into(), None),
    ))
}

/// Per-row losses and log-sum-exps of the logits, with the targets uploaded.
struct CeRows {
    lse_loss: CudaBuf,
    targets: Buffer<i64>,
}

fn ce_rows(
    s: &CudaStorage,
    t: &[i64],
    c: usize,
    ignore_index: i64,
    name: &'static str,
) -> Result<(CeRows, Buffer<f64>)> {
    let ke = |e| kernel_err(&s.gpu, e);
    let targets = s.gpu.upload(t).map_err(ke)?;
    // Sum of the counted rows' losses, in f64 on the host side of one small copy.
    macro_rules! run {
        ($t:ty) => {{
            let xb: &Buffer<$t> = s.typed(name)?;
            let out = rows::cross_entropy_fwd(xb, &targets, t, c, ignore_index).map_err(ke)?;
            let sum = {
                let mut one = s.gpu.alloc(1).map_err(ke)?;
                rows::reduce_rows(rows::Reduce::Sum, &out.loss, out.loss.len(), &mut one)
                    .map_err(ke)?;
                one
            };
            (out.lse, sum)
        }};
    }
    let (lse, sum): (CudaBuf, CudaBuf) = match s.dtype() {
        DType::F64 => {
            let (l, m) = run!(f64);
            (CudaBuf::F64(l), CudaBuf::F64(m))
        }
        DType::F32 => {
            let (l, m) = run!(f32);
            (CudaBuf::F32(l), CudaBuf::F32(m))
        }
        DType::F16 => {
            let (l, m) = run!(f16);
            (CudaBuf::F32(l), CudaBuf::F32(m))
        }
        DType::BF16 => {
            let (l, m) = run!(bf16);
            (CudaBuf::F32(l), CudaBuf::F32(m))
        }
        other => {
            return Err(Error::UnsupportedDType {
                op: name,
                dtype: other,
                note: "needs a float dtype".into(),
            })
        }
    };
    let total = match sum {
        CudaBuf::F64(b) => b,
        CudaBuf::F32(b) => {
            let mut w = s.gpu.alloc::<f64>(1).map_err(ke)?;
            ew::cast(&b, &mut w).map_err(ke)?;
            w
        }
        _ => unreachable!("sums are f32 or f64"),
    };
    Ok((
        CeRows {
            lse_loss: lse,
            targets,
        },
        total,
    ))
}

/// Mean cross-entropy of float logits `[.., c]` against host-checked targets `t`.
pub(crate) fn cross_entropy(
    x0: &Tensor,
    targets: &Tensor,
    t: &[i64],
    ignore_index: i64,
) -> Result<Tensor> {
    let name = "cross_entropy";
    let x = dense(x0)?;
    let s = cuda_of(&x, name)?;
    let c = *x.dims().last().unwrap_or(&1);
    let count = t.iter().filter(|&&v| v != ignore_index).count();
    let (_, total) = ce_rows(s, t, c, ignore_index, name)?;
    let ke = |e| kernel_err(&s.gpu, e);
    // mean = total / count (NaN for no counted row, as PyTorch), then the logits' dtype.
    let mut mean = s.gpu.alloc::<f64>(1).map_err(ke)?;
    let scalar = ptm_cuda::Layout::contiguous(&[1]).map_err(ke)?;
    ew::unary(
        Unary::MulScalar,
        1.0 / count as f64,
        &total,
        &scalar,
        &mut mean,
    )
    .map_err(ke)?;
    let buf = with_float!(s, name, T => {
        let mut out = s.gpu.alloc::<T>(1).map_err(ke)?;
        ew::cast(&mean, &mut out).map_err(ke)?;
        out
    });
    let op = Op::CrossEntropy {
        logits: x0.clone(),
        targets: targets.clone(),
        ignore_index,
    };
    Ok(wrap(&s.gpu, buf, ().into(), Some(op)))
}

/// The backward of [`cross_entropy`] for the upstream gradient `g` (a scalar on the GPU).
pub(crate) fn cross_entropy_backward(
    x: &Tensor,
    t: &[i64],
    ignore_index: i64,
    g: &Tensor,
) -> Result<Tensor> {
    let name = "cross_entropy_backward";
    let (x, g) = (dense(x)?, dense(g)?);
    let s = cuda_of(&x, name)?;
    same_gpu(s, cuda_of(&g, name)?, name)?;
    let c = *x.dims().last().unwrap_or(&1);
    let count = t.iter().filter(|&&v| v != ignore_index).count();
    let factor = if count == 0 { 0.0 } else { 1.0 / count as f64 };
    let (rows_, _) = ce_rows(s, t, c, ignore_index, name)?;
    let ke = |e| kernel_err(&s.gpu, e);
    let n = x.elem_count();
    macro_rules! run {
        ($t:ty, $acc:ident) => {{
            let xb: &Buffer<$t> = s.typed(name)?;
            let gb: &Buffer<$t> = cuda_of(&g, name)?.typed(name)?;
            let CudaBuf::$acc(lse) = rows_.lse_loss else {
                unreachable!("lse matches the dtype")
            };
            let fwd = rows::CrossEntropy::<$t> {
                loss: s.gpu.alloc(0).map_err(ke)?,
                lse,
            };
            let mut dx = s.gpu.alloc::<$t>(n).map_err(ke)?;
            rows::cross_entropy_bwd(
                xb,
                &rows_.targets,
                c,
                ignore_index,
                &fwd,
                gb,
                factor,
                &mut dx,
                false,
            )
            .map_err(ke)?;
            dx
        }};
    }
    let buf = match s.dtype() {
        DType::F64 => CudaBuf::F64(run!(f64, F64)),
        DType::F32 => CudaBuf::F32(run!(f32, F32)),
        DType::F16 => CudaBuf::F16(run!(f16, F32)),
        DType::BF16 => CudaBuf::BF16(run!(bf16, F32)),
        other => {
            return Err(Error::UnsupportedDType {
                op: name,
                dtype: other,
                note: "needs a float dtype".into(),
            })
        }
    };
    Ok(wrap(&s.gpu, buf, x.shape().clone(), None))
}

/// Fused attention forward on `[b, h, t, d]` tensors (k, v with the prefix keys first): the output
/// and each query's (max, 1/Σ) statistics, `[b·h, tq, 2]` in f32 (f64 for f64).
pub(crate) fn attention_fwd(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    sh: &ptm_cuda::ops::attention::AttentionShape,
    causal: bool,
    padding: Option<&[f32]>,
    scale: f64,
) -> Result<(Tensor, Tensor)> {
    use ptm_cuda::ops::attention as att;
    let name = "scaled_dot_product_attention";
    let (q, k, v) = (dense(q)?, dense(k)?, dense(v)?);
    let s = cuda_of(&q, name)?;
    same_gpu(s, cuda_of(&k, name)?, name)?;
    same_gpu(s, cuda_of(&v, name)?, name)?;
    let ke = |e| kernel_err(&s.gpu, e);
    let pad = padding.map(|p| s.gpu.upload(p)).transpose().map_err(ke)?;
    macro_rules! run {
        ($t:ty, $v:ident, $acc:ident) => {{
            let qb: &Buffer<$t> = s.typed(name)?;
            let kb: &Buffer<$t> = cuda_of(&k, name)?.typed(name)?;
            let vb: &Buffer<$t> = cuda_of(&v, name)?.typed(name)?;
            let mut o = s.gpu.alloc::<$t>(q.elem_count()).map_err(ke)?;
            let (stats, _) =
                att::attention_fwd(sh, causal, pad.as_ref(), scale, qb, kb, vb, &mut o, false)
                    .map_err(ke)?;
            (CudaBuf::$v(o), CudaBuf::$acc(stats))
        }};
    }
    let (o, stats) = match s.dtype() {
        DType::F64 => run!(f64, F64, F64),
        DType::F32 => run!(f32, F32, F32),
        DType::F16 => run!(f16, F16, F32),
        DType::BF16 => run!(bf16, BF16, F32),
        other => {
            return Err(Error::UnsupportedDType {
                op: name,
                dtype: other,
                note: "needs a float dtype".into(),
            })
        }
    };
    Ok((
        wrap(&s.gpu, o, q.shape().clone(), None),
        wrap(&s.gpu, stats, vec![sh.bh, sh.tq, 2].into(), None),
    ))
}

/// Fused attention backward: (dq, dk, dv) from the output, its statistics and its gradient.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_bwd(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    stats: &Tensor,
    g: &Tensor,
    sh: &ptm_cuda::ops::attention::AttentionShape,
    causal: bool,
    padding: Option<&[f32]>,
    scale: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    use ptm_cuda::ops::attention as att;
    let name = "scaled_dot_product_attention";
    let (q, k, v, out, stats, g) = (
        dense(q)?,
        dense(k)?,
        dense(v)?,
        dense(out)?,
        dense(stats)?,
        dense(g)?,
    );
    let s = cuda_of(&q, name)?;
    for t in [&k, &v, &out, &stats, &g] {
        same_gpu(s, cuda_of(t, name)?, name)?;
    }
    let ke = |e| kernel_err(&s.gpu, e);
    let pad = padding.map(|p| s.gpu.upload(p)).transpose().map_err(ke)?;
    macro_rules! run {
        ($t:ty, $v:ident, $acc:ty) => {{
            let qb: &Buffer<$t> = s.typed(name)?;
            let kb: &Buffer<$t> = cuda_of(&k, name)?.typed(name)?;
            let vb: &Buffer<$t> = cuda_of(&v, name)?.typed(name)?;
            let ob: &Buffer<$t> = cuda_of(&out, name)?.typed(name)?;
            let gb: &Buffer<$t> = cuda_of(&g, name)?.typed(name)?;
            let sb: &Buffer<$acc> = cuda_of(&stats, name)?.typed(name)?;
            let mut dq = s.gpu.alloc::<$t>(q.elem_count()).map_err(ke)?;
            let mut dk = s.gpu.alloc::<$t>(k.elem_count()).map_err(ke)?;
            let mut dv = s.gpu.alloc::<$t>(v.elem_count()).map_err(ke)?;
            att::attention_bwd(
                sh,
                causal,
                pad.as_ref(),
                scale,
                qb,
                kb,
                vb,
                ob,
                sb,
                gb,
                &mut dq,
                &mut dk,
                &mut dv,
                false,
            )
            .map_err(ke)?;
            (CudaBuf::$v(dq), CudaBuf::$v(dk), CudaBuf::$v(dv))
        }};
    }
    let (dq, dk, dv) = match s.dtype() {
        DType::F64 => run!(f64, F64, f64),
        DType::F32 => run!(f32, F32, f32),
        DType::F16 => run!(f16, F16, f32),
        DType::BF16 => run!(bf16, BF16, f32),
        other => {
            return Err(Error::UnsupportedDType {
                op: name,
                dtype: other,
                note: "needs a float dtype".into(),
            })
        }
    };
    Ok((
        wrap(&s.gpu, dq, q.shape().clone(), None),
        wrap(&s.gpu, dk, k.shape().clone(), None),
        wrap(&s.gpu, dv, v.shape().clone(), None),
    ))
}

fn u32_of<'a>(s: &'a CudaStorage, op: &'static str) -> Result<&'a Buffer<u32>> {
    match &s.buf {
        CudaBuf::U32(b) => Ok(b),
        other => Err(Error::UnsupportedOnDevice {
            op,
            device: format!(
                "cuda:{} (masks must be u32 there, not {:?})",
                s.ordinal(),
                other.dtype()
            ),
        }),
    }
}

/// A u32 0/1 mask of `a op b` (op as numbered by `ptm_cuda`'s `Compare`).
pub(crate) fn compare(
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    code: i32,
) -> Result<Tensor> {
    use ptm_cuda::ops::elementwise::Compare;
    let name = "compare";
    let (sa, sb) = (cuda_of(a, name)?, cuda_of(b, name)?);
    same_gpu(sa, sb, name)?;
    let op = [
        Compare::Eq,
        Compare::Ne,
        Compare::Lt,
        Compare::Le,
        Compare::Gt,
        Compare::Ge,
    ][code as usize];
    let (kla, klb) = (klayout(la)?, klayout(lb)?);
    let ke = |e| kernel_err(&sa.gpu, e);
    let mut y = sa.gpu.alloc::<u32>(la.shape().elem_count()).map_err(ke)?;
    macro_rules! run {
        ($x:expr, $z:expr) => {
            ew::compare(op, $x, &kla, $z, &klb, &mut y).map_err(ke)?
        };
    }
    match (&sa.buf, &sb.buf) {
        (CudaBuf::F32(x), CudaBuf::F32(z)) => run!(x, z),
        (CudaBuf::F64(x), CudaBuf::F64(z)) => run!(x, z),
        (CudaBuf::F16(x), CudaBuf::F16(z)) => run!(x, z),
        (CudaBuf::BF16(x), CudaBuf::BF16(z)) => run!(x, z),
        (CudaBuf::U32(x), CudaBuf::U32(z)) => run!(x, z),
        (CudaBuf::I64(x), CudaBuf::I64(z)) => run!(x, z),
        (x, _) => {
            return Err(Error::DTypeMismatch {
                op: name,
                lhs: x.dtype(),
                rhs: b.dtype(),
            })
        }
    }
    Ok(wrap(&sa.gpu, CudaBuf::U32(y), la.shape().clone(), None))
}

/// `t` where the u32 `mask` is set, `f` elsewhere, all broadcast to `shape`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn where_mask(
    mask: &Tensor,
    lm: &Layout,
    t: &Tensor,
    lt: &Layout,
    f: &Tensor,
    lf: &Layout,
    shape: Shape,
    op: Op,
) -> Result<Tensor> {
    let name = "where_cond";
    let (sm, st, sf) = (cuda_of(mask, name)?, cuda_of(t, name)?, cuda_of(f, name)?);
    same_gpu(sm, st, name)?;
    same_gpu(st, sf, name)?;
    let m = u32_of(sm, name)?;
    let (klm, klt, klf) = (klayout(lm)?, klayout(lt)?, klayout(lf)?);
    let ke = |e| kernel_err(&st.gpu, e);
    let n = shape.elem_count();
    macro_rules! run {
        ($x:expr, $z:expr) => {{
            let mut y = st.gpu.alloc(n).map_err(ke)?;
            ew::where_mask(m, &klm, $x, &klt, $z, &klf, &mut y).map_err(ke)?;
            y
        }};
    }
    let buf = match (&st.buf, &sf.buf) {
        (CudaBuf::F32(x), CudaBuf::F32(z)) => CudaBuf::F32(run!(x, z)),
        (CudaBuf::F64(x), CudaBuf::F64(z)) => CudaBuf::F64(run!(x, z)),
        (CudaBuf::F16(x), CudaBuf::F16(z)) => CudaBuf::F16(run!(x, z)),
        (CudaBuf::BF16(x), CudaBuf::BF16(z)) => CudaBuf::BF16(run!(x, z)),
        (CudaBuf::U32(x), CudaBuf::U32(z)) => CudaBuf::U32(run!(x, z)),
        (CudaBuf::I64(x), CudaBuf::I64(z)) => CudaBuf::I64(run!(x, z)),
        (x, _) => {
            return Err(Error::DTypeMismatch {
                op: name,
                lhs: x.dtype(),
                rhs: f.dtype(),
            })
        }
    };
    Ok(wrap(&st.gpu, buf, shape, Some(op)))
}

/// The tensors joined along `d` (shapes and dtypes already checked).
pub(crate) fn cat(tensors: &[Tensor], d: usize) -> Result<Tensor> {
    let name = "cat";
    let first = cuda_of(&tensors[0], name)?;
    let mut dims = tensors[0].dims().to_vec();
    dims[d] = tensors.iter().map(|t| t.dims()[d]).sum();
    let shape: Shape = dims.clone().into();
    let out_layout = Layout::contiguous(shape.clone());
    let ke = |e| kernel_err(&first.gpu, e);
    let n = shape.elem_count();
    macro_rules! run {
        ($v:ident) => {{
            let mut y = first.gpu.alloc(n).map_err(ke)?;
            let mut at = 0;
            for t in tensors {
                let s = cuda_of(t, name)?;
                same_gpu(first, s, name)?;
                let CudaBuf::$v(x) = &s.buf else {
                    return Err(Error::DTypeMismatch {
                        op: name,
                        lhs: first.dtype(),
                        rhs: s.dtype(),
                    });
                };
                let dst = out_layout.narrowed(d, at, t.dims()[d]);
                ew::copy_into(x, &klayout(t.layout())?, &mut y, &klayout(&dst)?).map_err(ke)?;
                at += t.dims()[d];
            }
            CudaBuf::$v(y)
        }};
    }
    let buf = match first.dtype() {
        DType::F32 => run!(F32),
        DType::F64 => run!(F64),
        DType::F16 => run!(F16),
        DType::BF16 => run!(BF16),
        DType::U32 => run!(U32),
        DType::I64 => run!(I64),
    };
    Ok(wrap(
        &first.gpu,
        buf,
        shape,
        Some(Op::Cat(tensors.to_vec(), d)),
    ))
}

/// Rows `idx` (validated) of x along `d`: the embedding kernel over `x` viewed as `[size, rest]`
/// with `d` moved first.
pub(crate) fn index_select(x0: &Tensor, d: usize, idx: &[i64], ids: &Tensor) -> Result<Tensor> {
    use ptm_cuda::ops::embedding;
    let name = "index_select";
    let moved = dense(&x0.detach().transpose(0, d)?)?;
    let s = cuda_of(&moved, name)?;
    let size = moved.dims()[0];
    let width = moved.elem_count().checked_div(size).unwrap_or(0);
    let ke = |e| kernel_err(&s.gpu, e);
    let ids_dev = s.gpu.upload(idx).map_err(ke)?;
    let buf = map_buf!(&s.buf, b => {
        let mut y = s.gpu.alloc(idx.len() * width).map_err(ke)?;
        embedding::embedding_fwd(&ids_dev, idx, b, width, &mut y).map_err(ke)?;
        y
    });
    let mut moved_dims = moved.dims().to_vec();
    moved_dims[0] = idx.len();
    let rows = wrap(&s.gpu, buf, moved_dims.into(), None);
    let out = dense(&rows.transpose(0, d)?)?;
    Ok(out.with_op(Op::IndexSelect(x0.clone(), ids.clone(), d)))
}

/// `x` with `src` added at rows `idx` along `dim` (the backward of [`index_select`]).
pub(crate) fn index_add(x: &Tensor, dim: usize, idx: &[i64], src: &Tensor) -> Result<Tensor> {
    use ptm_cuda::ops::embedding;
    let name = "index_add";
    let src_moved = dense(&src.detach().transpose(0, dim)?)?;
    let s = cuda_of(&src_moved, name)?;
    let size = x.dims()[dim];
    let width = src_moved.elem_count().checked_div(idx.len()).unwrap_or(0);
    let ke = |e| kernel_err(&s.gpu, e);
    let ids_dev = s.gpu.upload(idx).map_err(ke)?;
    macro_rules! run {
        ($t:ty, $acc:ty) => {{
            let b: &Buffer<$t> = s.typed(name)?;
            let mut acc = s.gpu.zeros::<$acc>(size * width).map_err(ke)?;
            embedding::embedding_bwd(&ids_dev, idx, b, width, &mut acc).map_err(ke)?;
            let mut out = s.gpu.alloc::<$t>(size * width).map_err(ke)?;
            ew::cast(&acc, &mut out).map_err(ke)?;
            out
        }};
    }
    let buf = with_float!(s, name, T => run!(T, <T as ptm_cuda::ops::FloatType>::Acc));
    let mut moved_dims = src_moved.dims().to_vec();
    moved_dims[0] = size;
    let scattered = wrap(&s.gpu, buf, moved_dims.into(), None).transpose(0, dim)?;
    x.detach().add(&scattered)
}

/// `out[i] = x[offsets[i]]` over x's elements in row-major order (the offsets validated by the
/// caller), shaped `shape`: a lookup of width 1.
pub(crate) fn gather(x0: &Tensor, offsets: &[i64], shape: Shape, op: Op) -> Result<Tensor> {
    use ptm_cuda::ops::embedding;
    let x = dense(&x0.detach())?;
    let s = cuda_of(&x, "gather")?;
    let ke = |e| kernel_err(&s.gpu, e);
    let ids = s.gpu.upload(offsets).map_err(ke)?;
    let buf = map_buf!(&s.buf, b => {
        let mut y = s.gpu.alloc(offsets.len()).map_err(ke)?;
        embedding::embedding_fwd(&ids, offsets, b, 1, &mut y).map_err(ke)?;
        y
    });
    Ok(wrap(&s.gpu, buf, shape, Some(op)))
}

/// `x` with `src[i]` added at x's row-major element `offsets[i]` (the backward of [`gather`];
/// float tensors, accumulated in f32, f64 for f64).
pub(crate) fn scatter_add(x: &Tensor, offsets: &[i64], src: &Tensor) -> Result<Tensor> {
    use ptm_cuda::ops::embedding;
    let name = "scatter_add";
    let src = dense(&src.detach())?;
    let s = cuda_of(&src, name)?;
    let n = x.elem_count();
    let ke = |e| kernel_err(&s.gpu, e);
    let ids = s.gpu.upload(offsets).map_err(ke)?;
    macro_rules! run {
        ($t:ty, $acc:ty) => {{
            let b: &Buffer<$t> = s.typed(name)?;
            let mut acc = s.gpu.zeros::<$acc>(n).map_err(ke)?;
            embedding::embedding_bwd(&ids, offsets, b, 1, &mut acc).map_err(ke)?;
            let mut out = s.gpu.alloc::<$t>(n).map_err(ke)?;
            ew::cast(&acc, &mut out).map_err(ke)?;
            out
        }};
    }
    let buf = with_float!(s, name, T => run!(T, <T as ptm_cuda::ops::FloatType>::Acc));
    let added = wrap(&s.gpu, buf, x.shape().clone(), None);
    x.detach().add(&added)
}

/// im2col of a `[n, c, h, w]` float tensor into `[n, c·kh·kw, oh·ow]` (geometry checked by the
/// caller).
pub(crate) fn unfold(
    x0: &Tensor,
    g: &ptm_cpu::conv::Conv2dGeometry,
    shape: Shape,
) -> Result<Tensor> {
    use ptm_cuda::ops::conv;
    let x = dense(&x0.detach())?;
    let s = cuda_of(&x, "unfold")?;
    let ke = |e| kernel_err(&s.gpu, e);
    let len = shape.elem_count();
    let buf = float_buf!(&s.buf, "unfold", b => {
        let mut y = s.gpu.alloc(len).map_err(ke)?;
        conv::im2col(b, g, &mut y).map_err(ke)?;
        y
    });
    Ok(wrap(&s.gpu, buf, shape, Some(Op::Unfold(x0.clone(), *g))))
}

/// The adjoint of [`unfold`]: patch gradients `[n, c·kh·kw, oh·ow]` folded back to `[n, c, h, w]`.
pub(crate) fn unfold_backward(g0: &Tensor, geom: &ptm_cpu::conv::Conv2dGeometry) -> Result<Tensor> {
    use ptm_cuda::ops::conv;
    let g = dense(&g0.detach())?;
    let s = cuda_of(&g, "unfold_backward")?;
    let ke = |e| kernel_err(&s.gpu, e);
    let len = geom.n * geom.c * geom.h * geom.w;
    let buf = float_buf!(&s.buf, "unfold_backward", b => {
        let mut dx = s.gpu.alloc(len).map_err(ke)?;
        conv::col2im(b, geom, &mut dx).map_err(ke)?;
        dx
    });
    let shape: Shape = vec![geom.n, geom.c, geom.h, geom.w].into();
    Ok(wrap(&s.gpu, buf, shape, None))
}

/// The fused SGD kernel on copies of the parameter and momentum buffer (shapes, dtypes and devices
/// checked by the caller); `buf` is None without momentum.
pub(crate) fn sgd_update(
    p: &Tensor,
    g: &Tensor,
    buf: Option<&Tensor>,
    h: &ptm_cpu::optim::Sgd,
    first: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let name = "sgd_update";
    let (p, g) = (dense(p)?, dense(g)?);
    let s = cuda_of(&p, name)?;
    let ke = |e| kernel_err(&s.gpu, e);
    let n = p.elem_count();
    let fresh = |t: &Tensor| -> Result<Buffer<f32>> {
        let t = dense(t)?;
        let src: &Buffer<f32> = cuda_of(&t, name)?.typed(name)?;
        let mut b = s.gpu.alloc::<f32>(n).map_err(ke)?;
        b.copy_from_device(src).map_err(ke)?;
        Ok(b)
    };
    let mut p2 = fresh(&p)?;
    let mut b2 = match buf {
        Some(b) => fresh(b)?,
        None => s.gpu.alloc::<f32>(0).map_err(ke)?,
    };
    let gb: &Buffer<f32> = cuda_of(&g, name)?.typed(name)?;
    ptm_cuda::ops::optim::sgd_step(&mut p2, gb, &mut b2, h, first).map_err(ke)?;
    let shape = p.shape().clone();
    let b2 = buf.map(|_| wrap(&s.gpu, CudaBuf::F32(b2), shape.clone(), None));
    Ok((wrap(&s.gpu, CudaBuf::F32(p2), shape, None), b2))
}

/// The fused AdamW kernel on copies of the parameter and moments (shapes, dtypes and devices
/// checked by the caller).
pub(crate) fn adamw_update(
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    h: &ptm_cpu::optim::AdamW,
    step: u64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let name = "adamw_update";
    let (p, g, m, v) = (dense(p)?, dense(g)?, dense(m)?, dense(v)?);
    let s = cuda_of(&p, name)?;
    let ke = |e| kernel_err(&s.gpu, e);
    let n = p.elem_count();
    let fresh = |t: &Tensor| -> Result<Buffer<f32>> {
        let src: &Buffer<f32> = cuda_of(t, name)?.typed(name)?;
        let mut b = s.gpu.alloc::<f32>(n).map_err(ke)?;
        b.copy_from_device(src).map_err(ke)?;
        Ok(b)
    };
    let (mut p2, mut m2, mut v2) = (fresh(&p)?, fresh(&m)?, fresh(&v)?);
    let gb: &Buffer<f32> = cuda_of(&g, name)?.typed(name)?;
    ptm_cuda::ops::optim::adamw_step(&mut p2, gb, &mut m2, &mut v2, h, step).map_err(ke)?;
    let shape = p.shape().clone();
    Ok((
        wrap(&s.gpu, CudaBuf::F32(p2), shape.clone(), None),
        wrap(&s.gpu, CudaBuf::F32(m2), shape.clone(), None),
        wrap(&s.gpu, CudaBuf::F32(v2), shape, None),
    ))
}
