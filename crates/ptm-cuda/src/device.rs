//! A CUDA device: its context, its one stream, its compiled modules and its memory pool.

use crate::compile;
use crate::error::{driver, Error, Result};
use crate::memory::{size_class, DType, Pool, PoolStats};
use crate::sources;
use crate::toolkit;
use cudarc::driver::{
    result, sys, CudaContext, CudaFunction, CudaModule, CudaStream, LaunchConfig,
};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

struct Inner {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    ordinal: usize,
    name: String,
    arch: String,
    sm_count: u32,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    pool: Pool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Every buffer holds an Arc to this, so none is alive: wait for queued work, then give the
        // cached blocks back to the driver.
        let _ = self.stream.synchronize();
        if self.ctx.bind_to_thread().is_ok() {
            self.pool.empty();
        }
    }
}

/// One GPU, cheap to clone (an `Arc`).
///
/// Kernels are compiled by NVRTC for the device's own architecture the first time one of a source
/// file's kernels is asked for, and the module is kept; the PTX is also cached on disk (see
/// [`compile::compile`]). All work runs on one stream, in order.
#[derive(Clone)]
pub struct Device(Arc<Inner>);

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Device({}: {}, {})",
            self.0.ordinal, self.0.name, self.0.arch
        )
    }
}

impl Device {
    /// Opens GPU `ordinal`. An `Err` (never a panic) when the driver, NVRTC or the GPU is missing.
    pub fn new(ordinal: usize) -> Result<Device> {
        toolkit::driver()?;
        toolkit::nvrtc()?;
        result::init().map_err(|e| Error::Unavailable(format!("cuInit: {e}")))?;
        let count = CudaContext::device_count()
            .map_err(|e| Error::Unavailable(format!("cuDeviceGetCount: {e}")))?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::Unavailable(format!(
                "no CUDA device {ordinal}: this machine has {count}"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(driver(format!("opening device {ordinal}")))?;
        // One stream, so event tracking between streams is not needed.
        // SAFETY: no CudaSlice of cudarc is ever shared between streams here.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(driver("creating a stream"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(driver("reading the compute capability"))?;
        let sm_count = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(driver("reading the SM count"))? as u32;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        Ok(Device(Arc::new(Inner {
            ctx,
            stream,
            ordinal,
            name,
            arch: format!("compute_{major}{minor}"),
            sm_count,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            pool: Pool::default(),
        })))
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.0.ordinal
    }

    /// The GPU's name, e.g. "NVIDIA H200".
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The virtual architecture kernels are compiled for, e.g. `compute_90`.
    pub fn arch(&self) -> &str {
        &self.0.arch
    }

    /// Number of streaming multiprocessors.
    pub fn sm_count(&self) -> u32 {
        self.0.sm_count
    }

    /// The device's stream (for launching kernels).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.0.stream
    }

    /// The allocator's counters.
    pub fn pool_stats(&self) -> PoolStats {
        self.0.pool.stats()
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<()> {
        self.0.stream.synchronize().map_err(driver("synchronizing"))
    }

    fn bind(&self) -> Result<()> {
        self.0
            .ctx
            .bind_to_thread()
            .map_err(driver("binding the context"))
    }

    /// Kernel `name` of source file `file` (compiling and loading the file at first use).
    pub fn function(&self, file: &'static str, name: &str) -> Result<CudaFunction> {
        if let Some(f) = self.0.functions.lock().expect("lock").get(name) {
            return Ok(f.clone());
        }
        let module = self.module(file)?;
        let f = module
            .load_function(name)
            .map_err(driver(format!("loading kernel {name} from {file}")))?;
        self.0
            .functions
            .lock()
            .expect("lock")
            .insert(name.to_string(), f.clone());
        Ok(f)
    }

    fn module(&self, file: &'static str) -> Result<Arc<CudaModule>> {
        if let Some(m) = self.0.modules.lock().expect("lock").get(file) {
            return Ok(m.clone());
        }
        let src = sources::source(file)
            .ok_or_else(|| Error::Invalid(format!("no kernel source {file}")))?;
        let ptx = compile::compile(src, &self.0.arch)?;
        let module = self
            .0
            .ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(driver(format!("loading the module of {file}")))?;
        self.0
            .modules
            .lock()
            .expect("lock")
            .insert(file, module.clone());
        Ok(module)
    }

    /// An uninitialised buffer of `len` elements.
    pub fn alloc<T: DType>(&self, len: usize) -> Result<Buffer<T>> {
        self.bind()?;
        let class = size_class(len * std::mem::size_of::<T>());
        let ptr = self.0.pool.take(class)?;
        Ok(Buffer {
            ptr,
            len,
            class,
            dev: self.clone(),
            _t: PhantomData,
        })
    }

    /// A buffer holding a copy of `data`.
    pub fn upload<T: DType>(&self, data: &[T]) -> Result<Buffer<T>> {
        let mut b = self.alloc::<T>(data.len())?;
        b.copy_from(data)?;
        Ok(b)
    }

    /// A buffer whose bytes are all `0xFF`: NaN for floats, -1 for integers. Tests fill outputs
    /// with this first so that an element a kernel forgot to write shows.
    pub fn poisoned<T: DType>(&self, len: usize) -> Result<Buffer<T>> {
        let b = self.alloc::<T>(len)?;
        if len > 0 {
            // SAFETY: the block is at least len * size_of::<T>() bytes, and the memset is queued
            // on the device's stream, before any use of the buffer.
            unsafe {
                result::memset_d8_async(
                    b.ptr,
                    0xFF,
                    len * std::mem::size_of::<T>(),
                    self.0.stream.cu_stream(),
                )
            }
            .map_err(driver("poisoning a buffer"))?;
        }
        Ok(b)
    }

    /// A zeroed buffer.
    pub fn zeros<T: DType>(&self, len: usize) -> Result<Buffer<T>> {
        let b = self.alloc::<T>(len)?;
        if len > 0 {
            // SAFETY: as in `poisoned`.
            unsafe {
                result::memset_d8_async(
                    b.ptr,
                    0,
                    len * std::mem::size_of::<T>(),
                    self.0.stream.cu_stream(),
                )
            }
            .map_err(driver("zeroing a buffer"))?;
        }
        Ok(b)
    }

    /// Starts a launch of `f` on the device's stream: push the arguments, then `launch`.
    pub fn launcher<'a>(&'a self, f: &'a CudaFunction) -> cudarc::driver::LaunchArgs<'a> {
        self.0.stream.launch_builder(f)
    }

    /// Grid for a grid-stride loop over `n` elements with `block` threads per block.
    pub fn grid_1d(&self, n: usize, block: u32) -> LaunchConfig {
        let blocks = n
            .div_ceil(block as usize)
            .clamp(1, self.0.sm_count as usize * 16);
        LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One block per row (grid-stride over rows beyond 65 535), with a block size suited to rows
    /// of `n` elements: about 8 elements per thread, 32 to 1024 threads.
    pub fn grid_rows(&self, rows: usize, n: usize) -> LaunchConfig {
        let threads = n.div_ceil(8).next_multiple_of(32).clamp(32, 1024) as u32;
        LaunchConfig {
            grid_dim: (rows.clamp(1, 65_535) as u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

/// `len` elements of `T` in device memory, from the device's pool; back to the pool on drop.
pub struct Buffer<T: DType> {
    ptr: sys::CUdeviceptr,
    len: usize,
    class: usize,
    dev: Device,
    _t: PhantomData<T>,
}

impl<T: DType> std::fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer<{}>[{}] on {:?}", T::NAME, self.len, self.dev)
    }
}

impl<T: DType> Buffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device address (a kernel argument).
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    /// The device address of element `i` (`i <= len`).
    pub fn ptr_at(&self, i: usize) -> u64 {
        assert!(i <= self.len, "element {i} of a buffer of {}", self.len);
        self.ptr + (i * std::mem::size_of::<T>()) as u64
    }

    /// The device it lives on.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// Copies `data` (exactly `len` elements) into the buffer; returns when the copy is done.
    pub fn copy_from(&mut self, data: &[T]) -> Result<()> {
        if data.len() != self.len {
            return Err(Error::Invalid(format!(
                "copy into a buffer of {} elements from {} elements",
                self.len,
                data.len()
            )));
        }
        if data.is_empty() {
            return Ok(());
        }
        self.dev.bind()?;
        let stream = &self.dev.0.stream;
        // SAFETY: the block holds len elements; the host slice lives until the synchronize below.
        unsafe { result::memcpy_htod_async(self.ptr, data, stream.cu_stream()) }
            .map_err(driver("copying to the device"))?;
        stream
            .synchronize()
            .map_err(driver("copying to the device"))
    }

    /// Queues a device-to-device copy of `src` (same length) into this buffer.
    pub fn copy_from_device(&mut self, src: &Buffer<T>) -> Result<()> {
        if src.len != self.len {
            return Err(Error::Invalid(format!(
                "copy into a buffer of {} elements from one of {}",
                self.len, src.len
            )));
        }
        if self.len == 0 {
            return Ok(());
        }
        self.dev.bind()?;
        // SAFETY: both blocks hold len elements; the copy is queued on the device's stream, in
        // order with the kernels that use either buffer.
        unsafe {
            result::memcpy_dtod_async(
                self.ptr,
                src.ptr,
                self.len * std::mem::size_of::<T>(),
                self.dev.0.stream.cu_stream(),
            )
        }
        .map_err(driver("copying on the device"))
    }

    /// The buffer's contents on the host (waits for queued work).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let mut out = vec![T::default(); self.len];
        if self.len == 0 {
            return Ok(out);
        }
        self.dev.bind()?;
        let stream = &self.dev.0.stream;
        // SAFETY: the block holds len elements; `out` lives until the synchronize below.
        unsafe { result::memcpy_dtoh_async(&mut out, self.ptr, stream.cu_stream()) }
            .map_err(driver("copying from the device"))?;
        stream
            .synchronize()
            .map_err(driver("copying from the device"))?;
        Ok(out)
    }
}

impl<T: DType> Drop for Buffer<T> {
    fn drop(&mut self) {
        self.dev.0.pool.give(self.class, self.ptr);
    }
}
