//! CPU storage: one flat vector per dtype. Views never copy it; ops read it through a [`Layout`].

use crate::dtype::{DType, WithDType};
use crate::Layout;
use half::{bf16, f16};
use ptm_cpu::strided::gather;
use ptm_cpu::Float;
use std::borrow::Cow;

/// Where a tensor's elements live.
#[derive(Debug)]
pub(crate) enum Storage {
    /// Host memory.
    Cpu(CpuStorage),
    /// Memory of a CUDA device.
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaStorage),
}

impl Storage {
    /// The dtype of the elements.
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.dtype(),
        }
    }

    /// Number of elements in the buffer.
    pub(crate) fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.len(),
        }
    }

    /// The device holding it.
    pub(crate) fn device(&self) -> crate::Device {
        match self {
            Storage::Cpu(_) => crate::Device::Cpu,
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => crate::Device::Cuda(s.ordinal()),
        }
    }
}

/// The elements of a tensor on the CPU, typed by dtype.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
    /// f16 elements.
    F16(Vec<f16>),
    /// bf16 elements.
    BF16(Vec<bf16>),
    /// u32 elements.
    U32(Vec<u32>),
    /// i64 elements.
    I64(Vec<i64>),
}

/// Runs `$body` with `$v` bound to the storage's vector, whatever its element type.
macro_rules! with_vec {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            CpuStorage::F32($v) => $body,
            CpuStorage::F64($v) => $body,
            CpuStorage::F16($v) => $body,
            CpuStorage::BF16($v) => $body,
            CpuStorage::U32($v) => $body,
            CpuStorage::I64($v) => $body,
        }
    };
}
pub(crate) use with_vec;

impl CpuStorage {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::U32(_) => DType::U32,
            CpuStorage::I64(_) => DType::I64,
        }
    }

    /// Number of elements in the buffer (not in any one view of it).
    pub fn len(&self) -> usize {
        with_vec!(self, v => v.len())
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A contiguous copy of the view `l`, same dtype.
    pub(crate) fn gather(&self, l: &Layout) -> CpuStorage {
        with_vec!(self, v => gather(v, l.dims(), l.strides(), l.offset()).into_storage())
    }

    /// The view `l` as a contiguous vector of `T`, converting element by element.
    pub(crate) fn gather_as<T: WithDType>(&self, l: &Layout) -> Vec<T> {
        if let Some(v) = T::slice(self) {
            return gather(v, l.dims(), l.strides(), l.offset());
        }
        with_vec!(self, v => gather(v, l.dims(), l.strides(), l.offset())
            .into_iter()
            .map(|x| T::of_f64(x.as_f64()))
            .collect())
    }

    /// A contiguous copy of the view `l` converted to `dtype`.
    pub(crate) fn cast(&self, l: &Layout, dtype: DType) -> CpuStorage {
        match dtype {
            DType::F32 => self.gather_as::<f32>(l).into_storage(),
            DType::F64 => self.gather_as::<f64>(l).into_storage(),
            DType::F16 => match self {
                CpuStorage::F32(v) => gather(v, l.dims(), l.strides(), l.offset())
                    .into_iter()
                    .map(f16::from_f32)
                    .collect::<Vec<_>>()
                    .into_storage(),
                _ => self.gather_as::<f16>(l).into_storage(),
            },
            DType::BF16 => match self {
                CpuStorage::F32(v) => gather(v, l.dims(), l.strides(), l.offset())
                    .into_iter()
                    .map(bf16::from_f32)
                    .collect::<Vec<_>>()
                    .into_storage(),
                _ => self.gather_as::<bf16>(l).into_storage(),
            },
            DType::U32 => self.gather_as::<u32>(l).into_storage(),
            DType::I64 => match self {
                CpuStorage::U32(v) => gather(v, l.dims(), l.strides(), l.offset())
                    .into_iter()
                    .map(i64::from)
                    .collect::<Vec<_>>()
                    .into_storage(),
                _ => self.gather_as::<i64>(l).into_storage(),
            },
        }
    }
}

/// Wraps a typed vector as storage.
pub(crate) trait IntoStorage {
    fn into_storage(self) -> CpuStorage;
}
impl<T: WithDType> IntoStorage for Vec<T> {
    fn into_storage(self) -> CpuStorage {
        T::to_storage(self)
    }
}

/// The two types float ops compute in: f64 for f64 tensors, f32 for f32, f16 and bf16 ones.
pub(crate) trait Compute: Float + WithDType {
    /// Reads the view `l` of a float storage as contiguous values in this compute type: borrowed
    /// when the storage already holds this type and the view is one contiguous block (the common
    /// case, which then costs no copy), gathered and converted otherwise.
    fn read<'a>(s: &'a CpuStorage, l: &Layout) -> Cow<'a, [Self]> {
        if let Some(v) = Self::slice(s) {
            if l.is_contiguous() {
                let n = l.shape().elem_count();
                return Cow::Borrowed(&v[l.offset()..l.offset() + n]);
            }
        }
        Cow::Owned(Self::read_owned(s, l))
    }
    /// Reads the view `l` as a new contiguous vector in this compute type.
    fn read_owned(s: &CpuStorage, l: &Layout) -> Vec<Self>;
    /// Stores a result computed in this type as `dtype`.
    fn write(v: Vec<Self>, dtype: DType) -> CpuStorage;
}

impl Compute for f32 {
    fn read_owned(s: &CpuStorage, l: &Layout) -> Vec<f32> {
        match s {
            CpuStorage::F16(v) => gather(v, l.dims(), l.strides(), l.offset())
                .into_iter()
                .map(f16::to_f32)
                .collect(),
            CpuStorage::BF16(v) => gather(v, l.dims(), l.strides(), l.offset())
                .into_iter()
                .map(bf16::to_f32)
                .collect(),
            _ => s.gather_as::<f32>(l),
        }
    }
    fn write(v: Vec<f32>, dtype: DType) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::F32(v),
            DType::F16 => CpuStorage::F16(v.into_iter().map(f16::from_f32).collect()),
            DType::BF16 => CpuStorage::BF16(v.into_iter().map(bf16::from_f32).collect()),
            other => {
                let n = v.len();
                CpuStorage::F32(v).cast(&Layout::contiguous(vec![n].into()), other)
            }
        }
    }
}

impl Compute for f64 {
    fn read_owned(s: &CpuStorage, l: &Layout) -> Vec<f64> {
        s.gather_as::<f64>(l)
    }
    fn write(v: Vec<f64>, dtype: DType) -> CpuStorage {
        match dtype {
            DType::F64 => CpuStorage::F64(v),
            other => {
                let n = v.len();
                CpuStorage::F64(v).cast(&Layout::contiguous(vec![n].into()), other)
            }
        }
    }
}

/// Runs `$body` with the type alias `$t` set to the compute type of a float `$dtype`, or returns
/// an unsupported-dtype error naming `$op` for integer dtypes.
macro_rules! float_dispatch {
    ($dtype:expr, $op:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F64 => {
                type $t = f64;
                $body
            }
            $crate::DType::F32 | $crate::DType::F16 | $crate::DType::BF16 => {
                type $t = f32;
                $body
            }
            d => {
                return Err($crate::Error::UnsupportedDType {
                    op: $op,
                    dtype: d,
                    note: "needs a float dtype".into(),
                })
            }
        }
    };
}
pub(crate) use float_dispatch;
