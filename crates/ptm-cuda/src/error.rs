//! Errors of ptm-cuda: every failure is a value naming what failed, never a panic.

/// What went wrong in ptm-cuda.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// CUDA (the driver, a GPU or NVRTC) is not available on this machine.
    #[error("CUDA unavailable: {0}")]
    Unavailable(String),
    /// NVRTC rejected a kernel source.
    #[error("NVRTC could not compile {source_name} for {arch}:\n{log}")]
    Compile {
        /// The kernel file, e.g. `softmax.cu`.
        source_name: String,
        /// The virtual architecture, e.g. `compute_90`.
        arch: String,
        /// NVRTC's log.
        log: String,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver error in {what}: {err}")]
    Driver {
        /// What ptm-cuda was doing.
        what: String,
        /// The driver's error.
        err: cudarc::driver::DriverError,
    },
    /// Arguments that do not fit the kernel (lengths, shapes, strides).
    #[error("{0}")]
    Invalid(String),
}

/// ptm-cuda's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Wraps a driver error with what was being done.
pub(crate) fn driver(what: impl Into<String>) -> impl FnOnce(cudarc::driver::DriverError) -> Error {
    let what = what.into();
    move |err| Error::Driver { what, err }
}
