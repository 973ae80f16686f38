//! Image preprocessing as transformers' `ViTImageProcessor` does it from
//! `preprocessor_config.json`: decode (PNG/JPEG), convert to RGB, resize with PIL's bilinear
//! filter, rescale by 1/255, normalise by mean and std, lay out as `[B, 3, H, W]`.

use crate::error::{input_err, Result};
use ptm_tensor::{Device, Tensor};
use serde::Deserialize;
use std::path::Path;

/// Target size of the resize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct ImageSize {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// `preprocessor_config.json` of a ViT checkpoint (transformers' defaults for absent keys).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct ImageProcessorConfig {
    /// Resize to `size` first.
    pub do_resize: bool,
    /// The size to resize to.
    pub size: ImageSize,
    /// PIL resampling filter: 2 is bilinear, the only one implemented.
    pub resample: u32,
    /// Multiply by `rescale_factor`.
    pub do_rescale: bool,
    /// 1/255.
    pub rescale_factor: f64,
    /// Subtract `image_mean`, divide by `image_std`, per channel.
    pub do_normalize: bool,
    /// Per-channel mean.
    pub image_mean: Vec<f64>,
    /// Per-channel standard deviation.
    pub image_std: Vec<f64>,
}

impl Default for ImageProcessorConfig {
    fn default() -> Self {
        ImageProcessorConfig {
            do_resize: true,
            size: ImageSize {
                height: 224,
                width: 224,
            },
            resample: 2,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: vec![0.5; 3],
            image_std: vec![0.5; 3],
        }
    }
}

impl ImageProcessorConfig {
    /// Reads `dir/preprocessor_config.json`; errors name the file and key.
    pub fn from_dir(dir: &Path) -> Result<ImageProcessorConfig> {
        let path = dir.join("preprocessor_config.json");
        let cfg: ImageProcessorConfig = crate::config::read_config(&path)?;
        cfg.validate(&path)?;
        Ok(cfg)
    }

    /// Checks the settings; `source` names where they came from in errors.
    pub fn validate(&self, source: &Path) -> Result<()> {
        let err = |msg: String| Err(crate::config::config_err(source, msg));
        if self.resample != 2 {
            return err(format!(
                "resample {} is not supported (only 2, bilinear)",
                self.resample
            ));
        }
        if self.image_mean.len() != 3 || self.image_std.len() != 3 || self.image_std.contains(&0.0)
        {
            return err("image_mean and image_std need 3 values, std non-zero".into());
        }
        if self.do_resize && (self.size.height == 0 || self.size.width == 0) {
            return err("size must be positive".into());
        }
        Ok(())
    }

    /// `pixel_values` `[B, 3, H, W]` (f32) for the image files at `paths`.
    pub fn preprocess_files(&self, paths: &[impl AsRef<Path>]) -> Result<Tensor> {
        let mut images = vec![];
        for p in paths {
            let p = p.as_ref();
            let img = image::open(p)
                .map_err(|e| input_err(p.display().to_string(), e.to_string()))?
                .to_rgb8();
            images.push((img.width() as usize, img.height() as usize, img.into_raw()));
        }
        self.preprocess(&images)
    }

    /// `pixel_values` for decoded RGB images given as `(width, height, interleaved RGB bytes)`.
    pub fn preprocess(&self, images: &[(usize, usize, Vec<u8>)]) -> Result<Tensor> {
        // The fields are public: check them here too, so no setting can index out of bounds.
        self.validate(Path::new("image processor settings"))?;
        let mut out = vec![];
        let (mut h, mut w) = (0, 0);
        for (i, (iw, ih, rgb)) in images.iter().enumerate() {
            if rgb.len() != iw * ih * 3 || *iw == 0 || *ih == 0 {
                return Err(input_err(
                    format!("image {i}"),
                    format!("{} bytes for {iw}x{ih} RGB", rgb.len()),
                ));
            }
            let (pix, ow, oh) = if self.do_resize {
                let (ow, oh) = (self.size.width, self.size.height);
                (resize_bilinear(rgb, *iw, *ih, ow, oh), ow, oh)
            } else {
                (rgb.clone(), *iw, *ih)
            };
            if i > 0 && (ow, oh) != (w, h) {
                return Err(input_err(
                    format!("image {i}"),
                    format!("{ow}x{oh} differs from the first image's {w}x{h} (enable do_resize)"),
                ));
            }
            (w, h) = (ow, oh);
            for c in 0..3 {
                for y in 0..oh {
                    for x in 0..ow {
                        let mut v = pix[(y * ow + x) * 3 + c] as f64;
                        if self.do_rescale {
                            v *= self.rescale_factor;
                        }
                        if self.do_normalize {
                            v = (v - self.image_mean[c]) / self.image_std[c];
                        }
                        out.push(v as f32);
                    }
                }
            }
        }
        Ok(Tensor::from_vec(
            out,
            [images.len(), 3, h, w],
            &Device::Cpu,
        )?)
    }
}

/// PIL's separable resampling weights for one axis (`Image.resize(..., BILINEAR)`): a triangle
/// filter widened by the scale when shrinking (antialiasing), normalised per output pixel.
fn weights(input: usize, output: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = input as f64 / output as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0, widened
    (0..output)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(input);
            let mut k: Vec<f64> = (lo..hi)
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) / filterscale).abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let total: f64 = k.iter().sum();
            if total > 0.0 {
                k.iter_mut().for_each(|w| *w /= total);
            }
            (lo, k)
        })
        .collect()
}

/// Rounds to a byte as PIL does after each pass.
fn to_u8(v: f64) -> u8 {
    (v + 0.5).floor().clamp(0.0, 255.0) as u8
}

/// Bilinear resize of interleaved RGB bytes, horizontal pass then vertical, each rounded to bytes
/// (PIL's order and precision). Equal sizes copy.
pub fn resize_bilinear(rgb: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<u8> {
    let horizontal = if ow == w {
        rgb.to_vec()
    } else {
        let wx = weights(w, ow);
        let mut out = vec![0u8; ow * h * 3];
        for y in 0..h {
            for (x, (lo, k)) in wx.iter().enumerate() {
                for c in 0..3 {
                    let s: f64 = k
                        .iter()
                        .enumerate()
                        .map(|(i, wt)| wt * rgb[(y * w + lo + i) * 3 + c] as f64)
                        .sum();
                    out[(y * ow + x) * 3 + c] = to_u8(s);
                }
            }
        }
        out
    };
    if oh == h {
        return horizontal;
    }
    let wy = weights(h, oh);
    let mut out = vec![0u8; ow * oh * 3];
    for (y, (lo, k)) in wy.iter().enumerate() {
        for x in 0..ow {
            for c in 0..3 {
                let s: f64 = k
                    .iter()
                    .enumerate()
                    .map(|(i, wt)| wt * horizontal[((lo + i) * ow + x) * 3 + c] as f64)
                    .sum();
                out[(y * ow + x) * 3 + c] = to_u8(s);
            }
        }
    }
    out
}
