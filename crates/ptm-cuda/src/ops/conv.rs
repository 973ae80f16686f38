//! im2col and its adjoint (`kernels/conv.cu`), in the layout of ptm-cpu's `im2col`.

use super::{expect_len, launched, FloatType};
use crate::device::Buffer;
use crate::error::{Error, Result};
use cudarc::driver::{DeviceRepr, PushKernelArg};

pub use ptm_cpu::conv::Conv2dGeometry;

/// The kernels' `ptm::ConvGeom`: planes = n·c and the output size resolved.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ConvGeom {
    planes: i64,
    h: i64,
    w: i64,
    kh: i64,
    kw: i64,
    stride: i64,
    pad: i64,
    oh: i64,
    ow: i64,
}

// SAFETY: plain-old-data with the C layout of the kernels' `ptm::ConvGeom` (nine i64).
unsafe impl DeviceRepr for ConvGeom {}

impl ConvGeom {
    fn of(g: &Conv2dGeometry, kernel: &str) -> Result<ConvGeom> {
        let (Some(oh), Some(ow)) = (g.out_h(), g.out_w()) else {
            return Err(Error::Invalid(format!(
                "{kernel}: a {}×{} kernel with stride {} and padding {} does not fit a {}×{} input",
                g.kh, g.kw, g.stride, g.padding, g.h, g.w
            )));
        };
        let i = |v: usize| v as i64;
        Ok(ConvGeom {
            planes: i(g.n * g.c),
            h: i(g.h),
            w: i(g.w),
            kh: i(g.kh),
            kw: i(g.kw),
            stride: i(g.stride),
            pad: i(g.padding),
            oh: i(oh),
            ow: i(ow),
        })
    }

    fn input_len(&self) -> usize {
        (self.planes * self.h * self.w) as usize
    }

    fn cols_len(&self) -> usize {
        (self.planes * self.kh * self.kw * self.oh * self.ow) as usize
    }
}

/// Unfolds the contiguous `[n, c, h, w]` input `x` into `cols` (`[n, c·kh·kw, oh·ow]`), zero
/// where a patch covers the padding.
pub fn im2col<T: FloatType>(x: &Buffer<T>, g: &Conv2dGeometry, cols: &mut Buffer<T>) -> Result<()> {
    let name = format!("im2col_{}", T::NAME);
    let geom = ConvGeom::of(g, &name)?;
    expect_len(&name, "x", x.len(), geom.input_len())?;
    expect_len(&name, "cols", cols.len(), geom.cols_len())?;
    if cols.is_empty() {
        return Ok(());
    }
    let dev = cols.device().clone();
    let f = dev.function("conv.cu", &name)?;
    let (xp, cp) = (x.ptr(), cols.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&geom).arg(&xp).arg(&cp);
    // SAFETY: arguments match `im2col_T(ConvGeom, const T*, T*)`; x holds planes·h·w elements and
    // cols planes·kh·kw·oh·ow (checked above), and every read index is inside the input.
    launched(unsafe { l.launch(dev.grid_1d(cols.len(), 256)) }, &name)
}

/// The adjoint of [`im2col`]: `dx` (`[n, c, h, w]`, overwritten) receives the sum of the column
/// entries that read each input element.
pub fn col2im<T: FloatType>(
    cols: &Buffer<T>,
    g: &Conv2dGeometry,
    dx: &mut Buffer<T>,
) -> Result<()> {
    let name = format!("col2im_{}", T::NAME);
    let geom = ConvGeom::of(g, &name)?;
    expect_len(&name, "cols", cols.len(), geom.cols_len())?;
    expect_len(&name, "dx", dx.len(), geom.input_len())?;
    if dx.is_empty() {
        return Ok(());
    }
    let dev = dx.device().clone();
    let f = dev.function("conv.cu", &name)?;
    let (cp, dp) = (cols.ptr(), dx.ptr());
    let mut l = dev.launcher(&f);
    l.arg(&geom).arg(&cp).arg(&dp);
    // SAFETY: arguments match `col2im_T(ConvGeom, const T*, T*)`; sizes checked above, and every
    // column index read is inside cols.
    launched(unsafe { l.launch(dev.grid_1d(dx.len(), 256)) }, &name)
}
