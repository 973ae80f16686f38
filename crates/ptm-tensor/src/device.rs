//! Where a tensor's storage lives.

/// A compute device. The CPU is always there; CUDA devices come with the `cuda` feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory, ptm-cpu kernels.
    #[default]
    Cpu,
    /// NVIDIA GPU number `n`, ptm-cuda kernels.
    #[cfg(feature = "cuda")]
    Cuda(usize),
}

impl Device {
    /// Whether this is a CUDA device.
    pub fn is_cuda(&self) -> bool {
        !matches!(self, Device::Cpu)
    }

    /// GPU `n` when one can be opened, the CPU otherwise (always the CPU without the `cuda`
    /// feature).
    pub fn cuda_if_available(n: usize) -> Device {
        #[cfg(feature = "cuda")]
        if crate::cuda::open_gpu(n).is_ok() {
            return Device::Cuda(n);
        }
        let _ = n;
        Device::Cpu
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            #[cfg(feature = "cuda")]
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}
