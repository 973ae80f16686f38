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

impl std::str::FromStr for Device {
    type Err = crate::Error;

    /// `cpu`, `cuda` (GPU 0) or `cuda:N`. Naming a GPU in a build without the `cuda` feature is an
    /// error that says so.
    fn from_str(s: &str) -> crate::Result<Device> {
        let bad = |msg: String| crate::Error::Device {
            device: s.to_string(),
            msg,
        };
        let gpu = match s {
            "cpu" => return Ok(Device::Cpu),
            "cuda" => 0,
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => n,
                _ => return Err(bad("expected cpu, cuda or cuda:N".into())),
            },
        };
        #[cfg(feature = "cuda")]
        return Ok(Device::Cuda(gpu));
        #[cfg(not(feature = "cuda"))]
        Err(bad(format!(
            "GPU {gpu} asked for, but ptm-tensor was built without its `cuda` feature"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_from_their_names() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert!("gpu"
            .parse::<Device>()
            .unwrap_err()
            .to_string()
            .contains("cpu, cuda or cuda:N"));
        assert!("cuda:x".parse::<Device>().is_err());
        #[cfg(feature = "cuda")]
        {
            assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
            assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
            assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        }
        #[cfg(not(feature = "cuda"))]
        assert!("cuda:1"
            .parse::<Device>()
            .unwrap_err()
            .to_string()
            .contains("`cuda` feature"));
    }
}
