//! The `Tensor` handle: storage + layout + dtype + device + the op that made it.

use crate::backprop::is_grad_enabled;
use crate::dtype::WithDType;
use crate::error::{Error, Result};
use crate::op::Op;
use crate::storage::{CpuStorage, IntoStorage, Storage};
use crate::{DType, Device, Layout, Rng, Shape};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A process-unique tensor identity, the key of a [`crate::GradStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

pub(crate) struct Inner {
    id: TensorId,
    storage: Arc<Storage>,
    layout: Layout,
    op: Option<Op>,
    is_variable: bool,
}

/// An n-dimensional array with value semantics. Cloning is cheap (an `Arc`); views share storage;
/// no op changes a tensor in place.
///
/// ```
/// use ptm_tensor::{DType, Device, Tensor};
/// # fn main() -> ptm_tensor::Result<()> {
/// let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3], &Device::Cpu)?.as_var();
/// let loss = w.mul(&w)?.sum_all()?;               // Σ w²
/// let grads = loss.backward()?;
/// assert_eq!(grads.get(&w).unwrap().to_vec::<f32>()?, vec![2.0, 4.0, 6.0]);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tensor(Arc<Inner>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor[{:?}, {:?}, {}",
            self.dims(),
            self.dtype(),
            self.device()
        )?;
        if self.elem_count() <= 16 {
            if let Ok(v) = self.to_f64_vec() {
                write!(f, ", {v:?}")?;
            }
        }
        write!(f, "]")
    }
}

impl Tensor {
    /// Builds a tensor from parts, recording `op` only when gradients are on and an input tracks them.
    pub(crate) fn from_parts(storage: Arc<Storage>, layout: Layout, op: Option<Op>) -> Tensor {
        let op = op.filter(|op| is_grad_enabled() && op.inputs().iter().any(|t| t.tracks_grad()));
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            storage,
            layout,
            op,
            is_variable: false,
        }))
    }

    /// A fresh contiguous tensor over new storage.
    pub(crate) fn from_storage(storage: CpuStorage, shape: Shape, op: Option<Op>) -> Tensor {
        debug_assert_eq!(storage.len(), shape.elem_count());
        Tensor::from_parts(
            Arc::new(Storage::Cpu(storage)),
            Layout::contiguous(shape),
            op,
        )
    }

    /// A fresh contiguous tensor over new storage on any device.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn from_any_storage(storage: Storage, shape: Shape, op: Option<Op>) -> Tensor {
        debug_assert_eq!(storage.len(), shape.elem_count());
        Tensor::from_parts(Arc::new(storage), Layout::contiguous(shape), op)
    }

    /// This result recorded as the output of `op` (same storage and view).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn with_op(&self, op: Op) -> Tensor {
        Tensor::from_parts(self.0.storage.clone(), self.0.layout.clone(), Some(op))
    }

    /// A view of this tensor's storage with another layout.
    pub(crate) fn view(&self, layout: Layout, op: Op) -> Tensor {
        Tensor::from_parts(self.0.storage.clone(), layout, Some(op))
    }

    /// The host storage, or an error naming `op` when the tensor lives on a device that `op`
    /// has no path for.
    #[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
    pub(crate) fn cpu(&self, op: &'static str) -> Result<&CpuStorage> {
        match &*self.0.storage {
            Storage::Cpu(s) => Ok(s),
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => Err(Error::UnsupportedOnDevice {
                op,
                device: self.device().to_string(),
            }),
        }
    }

    /// The storage, whatever the device.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn any_storage(&self) -> &Storage {
        &self.0.storage
    }

    pub(crate) fn op(&self) -> Option<&Op> {
        self.0.op.as_ref()
    }

    // ---- creation ----

    /// A tensor holding `data` in row-major order with the given shape.
    pub fn from_vec<T: WithDType>(
        data: Vec<T>,
        shape: impl Into<Shape>,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.elem_count() {
            return Err(Error::BadShape {
                op: "from_vec",
                shape,
                msg: format!("{} elements given", data.len()),
            });
        }
        let t = Tensor::from_storage(data.into_storage(), shape, None);
        if device.is_cuda() {
            return t.to_device(device);
        }
        Ok(t)
    }

    /// This tensor on `device`: itself when already there, else a copy. The copy is not recorded
    /// for autograd (make variables on the device they train on).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if self.device() == *device {
            return Ok(self.clone());
        }
        #[cfg(feature = "cuda")]
        return crate::cuda::to_device(self, device);
        #[cfg(not(feature = "cuda"))]
        Ok(self.clone())
    }

    /// Like [`Tensor::from_vec`], copying from a slice.
    pub fn from_slice<T: WithDType>(
        data: &[T],
        shape: impl Into<Shape>,
        device: &Device,
    ) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape, device)
    }

    /// A tensor filled with `value` (converted to `dtype`) on `device`. An error only where the
    /// device cannot hold it (no GPU, out of device memory).
    pub fn full(
        value: f64,
        shape: impl Into<Shape>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        #[cfg(feature = "cuda")]
        if let Device::Cuda(n) = *device {
            return crate::cuda::full(value, shape, dtype, n);
        }
        let _ = device;
        let n = shape.elem_count();
        let storage = match dtype {
            DType::F32 => vec![value as f32; n].into_storage(),
            DType::F64 => vec![value; n].into_storage(),
            DType::F16 => vec![half::f16::from_f64(value); n].into_storage(),
            DType::BF16 => vec![half::bf16::from_f64(value); n].into_storage(),
            DType::U32 => vec![value as u32; n].into_storage(),
            DType::I64 => vec![value as i64; n].into_storage(),
        };
        Ok(Tensor::from_storage(storage, shape, None))
    }

    /// All zeros.
    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(0.0, shape, dtype, device)
    }

    /// All ones.
    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(1.0, shape, dtype, device)
    }

    /// Zeros with this tensor's shape, dtype and device.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape(), self.dtype(), &self.device())
    }

    /// Ones with this tensor's shape, dtype and device.
    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::ones(self.shape(), self.dtype(), &self.device())
    }

    /// A rank-0 tensor.
    pub fn scalar(value: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(value, (), dtype, device)
    }

    /// `start, start+step, ...` up to but excluding `end`, as PyTorch's `arange`.
    pub fn arange_step(
        start: f64,
        end: f64,
        step: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(crate::error::invalid(
                "arange",
                format!("start {start}, end {end}, step {step}"),
            ));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Tensor::from_vec(v, [n], &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    }

    /// `start, start+1, ..., end-1`.
    pub fn arange(start: f64, end: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::arange_step(start, end, 1.0, dtype, device)
    }

    /// Uniform samples in `[lo, hi)` from `rng`.
    pub fn rand(
        lo: f64,
        hi: f64,
        shape: impl Into<Shape>,
        dtype: DType,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.elem_count())
            .map(|_| lo + (hi - lo) * rng.uniform())
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    }

    /// Normal samples with the given mean and standard deviation from `rng`.
    pub fn randn(
        mean: f64,
        std: f64,
        shape: impl Into<Shape>,
        dtype: DType,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.elem_count())
            .map(|_| mean + std * rng.normal())
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    }

    // ---- accessors ----

    /// The identity used as a gradient key.
    pub fn id(&self) -> TensorId {
        self.0.id
    }
    /// The shape.
    pub fn shape(&self) -> &Shape {
        self.0.layout.shape()
    }
    /// The dims.
    pub fn dims(&self) -> &[usize] {
        self.0.layout.dims()
    }
    /// Number of dims.
    pub fn rank(&self) -> usize {
        self.dims().len()
    }
    /// Size of one dim (negative counts from the back).
    pub fn dim(&self, d: impl crate::Dim) -> Result<usize> {
        Ok(self.dims()[d.resolve(self.shape(), "dim")?])
    }
    /// Number of elements.
    pub fn elem_count(&self) -> usize {
        self.shape().elem_count()
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.storage.dtype()
    }
    /// The device holding the storage.
    pub fn device(&self) -> Device {
        self.0.storage.device()
    }
    /// The layout (shape, strides, offset) of this view.
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    /// Whether this view is contiguous row-major.
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    /// Whether two tensors share one storage buffer (views of each other).
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    // ---- autograd flags ----

    /// A variable (a leaf whose gradient `backward` returns) sharing this tensor's storage.
    pub fn as_var(&self) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            storage: self.0.storage.clone(),
            layout: self.0.layout.clone(),
            op: None,
            is_variable: true,
        }))
    }
    /// Whether this is a variable.
    pub fn is_variable(&self) -> bool {
        self.0.is_variable
    }
    /// Whether gradients flow through this tensor (a variable, or computed from one).
    pub fn tracks_grad(&self) -> bool {
        self.0.is_variable || self.0.op.is_some()
    }
    /// The same values cut off from the graph: no gradient flows through the result.
    pub fn detach(&self) -> Tensor {
        if !self.tracks_grad() {
            return self.clone();
        }
        Tensor::from_parts(self.0.storage.clone(), self.0.layout.clone(), None)
    }

    // ---- reading values out ----

    /// The elements in row-major order; `T` must be this tensor's dtype.
    pub fn to_vec<T: WithDType>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "to_vec",
                lhs: self.dtype(),
                rhs: T::DTYPE,
            });
        }
        Ok(self.host()?.gather_as::<T>(&self.0.layout))
    }

    /// The storage on the host: borrowed for a CPU tensor, copied from the device otherwise.
    fn host(&self) -> Result<std::borrow::Cow<'_, CpuStorage>> {
        match &*self.0.storage {
            Storage::Cpu(s) => Ok(std::borrow::Cow::Borrowed(s)),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => Ok(std::borrow::Cow::Owned(s.download()?)),
        }
    }

    /// The elements in row-major order, borrowed without a copy when this tensor holds `T` in one
    /// contiguous block (a parameter, a gradient, a fresh result), else copied as [`Tensor::to_vec`]
    /// does. Same dtype rule as `to_vec`.
    pub fn values<T: WithDType>(&self) -> Result<std::borrow::Cow<'_, [T]>> {
        let l = &self.0.layout;
        if let (true, Storage::Cpu(s)) = (l.is_contiguous(), &*self.0.storage) {
            let Some(v) = T::slice(s) else {
                return self.to_vec::<T>().map(std::borrow::Cow::Owned);
            };
            let n = l.shape().elem_count();
            return Ok(std::borrow::Cow::Borrowed(&v[l.offset()..l.offset() + n]));
        }
        self.to_vec::<T>().map(std::borrow::Cow::Owned)
    }

    /// Takes this tensor's elements without copying them when nothing else can see them: a CPU
    /// tensor of dtype `T`, in one contiguous block that is its whole storage, whose storage no
    /// other tensor (clone, view, variable handle, autograd graph) shares. Otherwise gives the
    /// tensor back unchanged, and the caller copies (see [`Tensor::to_vec`]).
    ///
    /// This is how an optimizer updates a parameter in place without breaking value semantics:
    /// a buffer only one handle reaches can change without anyone observing it.
    pub fn try_unwrap_vec<T: WithDType>(self) -> std::result::Result<Vec<T>, Tensor> {
        let l = &self.0.layout;
        let whole = l.is_contiguous()
            && l.offset() == 0
            && self.0.storage.len() == l.shape().elem_count()
            && self.dtype() == T::DTYPE
            && matches!(&*self.0.storage, Storage::Cpu(_));
        if !whole || Arc::strong_count(&self.0.storage) != 1 {
            return Err(self);
        }
        let inner = Arc::try_unwrap(self.0).map_err(Tensor)?;
        let Inner {
            id,
            storage,
            layout,
            op,
            is_variable,
        } = inner;
        let rebuild = |storage| {
            Tensor(Arc::new(Inner {
                id,
                storage,
                layout,
                op,
                is_variable,
            }))
        };
        match Arc::try_unwrap(storage) {
            Ok(Storage::Cpu(s)) => {
                T::unwrap_storage(s).map_err(|s| rebuild(Arc::new(Storage::Cpu(s))))
            }
            #[cfg(feature = "cuda")]
            Ok(other) => Err(rebuild(Arc::new(other))),
            Err(shared) => Err(rebuild(shared)),
        }
    }

    /// The elements of a rank-2 tensor as rows.
    pub fn to_vec2<T: WithDType>(&self) -> Result<Vec<Vec<T>>> {
        let (_, c) = self.shape().dims2("to_vec2")?;
        Ok(self
            .to_vec::<T>()?
            .chunks(c.max(1))
            .map(|r| r.to_vec())
            .collect())
    }

    /// The single element of a one-element tensor.
    pub fn to_scalar<T: WithDType>(&self) -> Result<T> {
        if self.elem_count() != 1 {
            return Err(Error::BadShape {
                op: "to_scalar",
                shape: self.shape().clone(),
                msg: "expected one element".into(),
            });
        }
        Ok(self.to_vec::<T>()?[0])
    }

    /// The elements converted to f64, whatever the dtype.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        Ok(self.host()?.gather_as::<f64>(&self.0.layout))
    }

    /// A contiguous host copy of the raw storage of this view (same dtype); `op` names the caller
    /// in the error for a device tensor.
    pub(crate) fn contiguous_storage(&self, op: &'static str) -> Result<CpuStorage> {
        Ok(self.cpu(op)?.gather(&self.0.layout))
    }

    /// [`Tensor::storage_view`] for a tensor on any device (a device tensor is copied to the host).
    pub(crate) fn host_storage_view(&self) -> Result<std::borrow::Cow<'_, CpuStorage>> {
        match &*self.0.storage {
            Storage::Cpu(_) => self.storage_view("save"),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => Ok(std::borrow::Cow::Owned(
                s.download()?.gather(&self.0.layout),
            )),
        }
    }

    /// The elements in row-major order without copying when the view already is the whole
    /// storage in order (the common case: a parameter, a fresh result), else a gathered copy.
    pub(crate) fn storage_view(
        &self,
        op: &'static str,
    ) -> Result<std::borrow::Cow<'_, CpuStorage>> {
        let l = &self.0.layout;
        let s = self.cpu(op)?;
        Ok(
            if l.is_contiguous() && l.offset() == 0 && l.shape().elem_count() == s.len() {
                std::borrow::Cow::Borrowed(s)
            } else {
                std::borrow::Cow::Owned(s.gather(l))
            },
        )
    }

    // ---- checks shared by ops ----

    pub(crate) fn check_same_dtype(&self, other: &Tensor, op: &'static str) -> Result<()> {
        if self.dtype() != other.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                lhs: self.dtype(),
                rhs: other.dtype(),
            });
        }
        if self.device() != other.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: self.device().to_string(),
                rhs: other.device().to_string(),
            });
        }
        Ok(())
    }

    pub(crate) fn check_float(&self, op: &'static str) -> Result<()> {
        if !self.dtype().is_float() {
            return Err(Error::UnsupportedDType {
                op,
                dtype: self.dtype(),
                note: "needs a float dtype".into(),
            });
        }
        Ok(())
    }
}
