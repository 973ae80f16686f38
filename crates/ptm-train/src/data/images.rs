//! Labelled grey images in the IDX format of MNIST and Fashion-MNIST, as ViT batches.
//!
//! IDX: two zero bytes, a type byte (0x08: unsigned bytes, the only type read here), the number
//! of dimensions, each dimension as a big-endian u32, then the data in row-major order.
//! Pixels become `pixel_values` as ViTImageProcessor's defaults make them: `x / 255`, then
//! normalised with mean 0.5 and standard deviation 0.5, into `[-1, 1]`.

use super::{TrainBatch, TrainData};
use crate::error::{data, Result};
use ptm_tensor::{Device, Tensor};
use std::path::Path;

/// The bytes of an IDX file of unsigned bytes with `dims`.
pub fn idx_bytes(values: &[u8], dims: &[usize]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend((d as u32).to_be_bytes());
    }
    out.extend_from_slice(values);
    out
}

/// Reads an IDX file of unsigned bytes: its dimensions and values. Errors name the file.
pub fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| data(path.display(), e.to_string()))?;
    let bad = |msg: String| data(path.display(), msg);
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("not an IDX file (no 00 00 magic)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!(
            "IDX type 0x{:02x}; only unsigned bytes (0x08) are read",
            bytes[2]
        )));
    }
    let rank = bytes[3] as usize;
    let head = 4 + 4 * rank;
    if bytes.len() < head {
        return Err(bad(format!("truncated header ({rank} dimensions)")));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let n: usize = dims.iter().product();
    if bytes.len() - head != n {
        return Err(bad(format!(
            "dimensions {dims:?} need {n} bytes of data, the file has {}",
            bytes.len() - head
        )));
    }
    Ok((dims, bytes[head..].to_vec()))
}

/// Grey images with integer labels.
#[derive(Clone, Debug)]
pub struct Images {
    /// `len · height · width` bytes, image after image.
    pixels: Vec<u8>,
    /// One label per image.
    labels: Vec<u8>,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Random translation applied to each image of a batch, if any.
    shift: Option<Shift>,
}

/// Random translation: each image of a batch moves by `dy, dx` drawn uniformly from
/// `-max..=max`, the uncovered border filled with 0 (the background of MNIST-like images).
#[derive(Clone, Copy, Debug)]
struct Shift {
    max: usize,
    seed: u64,
}

/// One batch: `pixel_values` `[B, 1, H, W]` f32 and `labels` `[B]` i64.
#[derive(Clone, Debug)]
pub struct ImageBatch {
    /// Normalised pixels.
    pub pixel_values: Tensor,
    /// Class ids.
    pub labels: Tensor,
}

impl TrainBatch for ImageBatch {
    fn count(&self) -> usize {
        self.labels.elem_count()
    }
}

impl Images {
    /// Images from an IDX file of `[n, h, w]` bytes and labels from one of `[n]`; the counts must
    /// agree.
    pub fn read(images: &Path, labels: &Path) -> Result<Images> {
        let (idims, pixels) = read_idx(images)?;
        let (ldims, labels_v) = read_idx(labels)?;
        let [n, height, width] = idims[..] else {
            return Err(data(
                images.display(),
                format!("dimensions {idims:?}, expected [images, height, width]"),
            ));
        };
        if ldims != [n] {
            return Err(data(
                labels.display(),
                format!(
                    "dimensions {ldims:?}, expected [{n}] (one label per image of {})",
                    images.display()
                ),
            ));
        }
        Ok(Images {
            pixels,
            labels: labels_v,
            height,
            width,
            shift: None,
        })
    }

    /// Images built in memory (`pixels` image after image).
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>, height: usize, width: usize) -> Result<Images> {
        if pixels.len() != labels.len() * height * width {
            return Err(data(
                "images",
                format!(
                    "{} pixels for {} images of {height}x{width}",
                    pixels.len(),
                    labels.len()
                ),
            ));
        }
        Ok(Images {
            pixels,
            labels,
            height,
            width,
            shift: None,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels, in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Distinct labels: one more than the largest.
    pub fn num_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| m as usize + 1)
    }

    /// The images at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Images {
        let px = self.height * self.width;
        Images {
            pixels: idx
                .iter()
                .flat_map(|&i| self.pixels[i * px..(i + 1) * px].iter().copied())
                .collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            height: self.height,
            width: self.width,
            shift: self.shift,
        }
    }

    /// The same images, each moved by a random translation of up to `max` pixels per axis when
    /// batched (training augmentation; `max = 0` turns it off). The translations are drawn per
    /// batch from `seed` and the batch's indices (see `batch_rng`): a resumed run sees the ones
    /// the uninterrupted run saw.
    pub fn with_shift(mut self, max: usize, seed: u64) -> Images {
        self.shift = (max > 0).then_some(Shift { max, seed });
        self
    }

    /// Image `i`'s pixels, translated by `(dy, dx)`, into `out` (`height·width` bytes).
    fn shifted_into(&self, i: usize, dy: isize, dx: isize, out: &mut [u8]) {
        let (h, w) = (self.height as isize, self.width as isize);
        let src = &self.pixels[i * out.len()..(i + 1) * out.len()];
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = (y - dy, x - dx);
                out[(y * w + x) as usize] = if (0..h).contains(&sy) && (0..w).contains(&sx) {
                    src[(sy * w + sx) as usize]
                } else {
                    0
                };
            }
        }
    }
}

impl TrainData for Images {
    type Batch = ImageBatch;

    fn len(&self) -> usize {
        Images::len(self)
    }

    fn batch(&self, idx: &[usize]) -> Result<ImageBatch> {
        let (h, w) = (self.height, self.width);
        let px = h * w;
        let mut bytes = vec![0u8; idx.len() * px];
        match self.shift {
            None => {
                for (dst, &i) in bytes.chunks_mut(px).zip(idx) {
                    dst.copy_from_slice(&self.pixels[i * px..(i + 1) * px]);
                }
            }
            Some(Shift { max, seed }) => {
                let mut rng = super::batch_rng(seed, idx);
                let span = 2 * max as u64 + 1;
                for (dst, &i) in bytes.chunks_mut(px).zip(idx) {
                    let dy = (rng.next_u64() % span) as isize - max as isize;
                    let dx = (rng.next_u64() % span) as isize - max as isize;
                    self.shifted_into(i, dy, dx, dst);
                }
            }
        }
        let values: Vec<f32> = bytes
            .iter()
            .map(|&p| (p as f32 / 255.0 - 0.5) / 0.5)
            .collect();
        let labels: Vec<i64> = idx.iter().map(|&i| self.labels[i] as i64).collect();
        let b = idx.len();
        Ok(ImageBatch {
            pixel_values: Tensor::from_vec(values, [b, 1, h, w], &Device::Cpu)?,
            labels: Tensor::from_vec(labels, [b], &Device::Cpu)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_round_trips_and_bad_files_are_named() {
        let dir = std::env::temp_dir().join(format!("ptm-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let px: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8 * 10).collect();
        std::fs::write(dir.join("i.idx"), idx_bytes(&px, &[2, 3, 4])).unwrap();
        std::fs::write(dir.join("l.idx"), idx_bytes(&[7, 1], &[2])).unwrap();
        std::fs::write(dir.join("l3.idx"), idx_bytes(&[7, 1, 2], &[3])).unwrap();
        let im = Images::read(&dir.join("i.idx"), &dir.join("l.idx")).unwrap();
        assert_eq!(
            (im.len(), im.height, im.width, im.num_classes()),
            (2, 3, 4, 8)
        );
        let b = im.batch(&[1]).unwrap();
        assert_eq!(b.pixel_values.dims(), [1, 1, 3, 4]);
        let v = b
            .pixel_values
            .flatten_all()
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(
            v[0],
            (120.0 / 255.0 - 0.5) / 0.5,
            "image 1 starts at pixel 12"
        );
        assert_eq!(b.labels.to_vec::<i64>().unwrap(), [1]);
        assert_eq!(im.subset(&[1, 0]).labels(), [1, 7]);

        let e = Images::read(&dir.join("i.idx"), &dir.join("l3.idx"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("l3.idx") && e.contains("[3]"), "{e}");
        let mut cut = idx_bytes(&px, &[2, 3, 4]);
        cut.pop();
        std::fs::write(dir.join("cut.idx"), cut).unwrap();
        let e = read_idx(&dir.join("cut.idx")).unwrap_err().to_string();
        assert!(e.contains("cut.idx") && e.contains("need 24 bytes"), "{e}");
        std::fs::write(dir.join("txt.idx"), b"hello").unwrap();
        let e = read_idx(&dir.join("txt.idx")).unwrap_err().to_string();
        assert!(e.contains("not an IDX file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Where the one lit pixel of each image of a batch landed, as (row, col).
    fn lit(b: &ImageBatch, h: usize, w: usize) -> Vec<(usize, usize)> {
        let v = b
            .pixel_values
            .flatten_all()
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        v.chunks(h * w)
            .map(|img| {
                let lit: Vec<usize> = (0..h * w).filter(|&i| img[i] > 0.0).collect();
                assert_eq!(lit.len(), 1, "one lit pixel, background elsewhere: {img:?}");
                (lit[0] / w, lit[0] % w)
            })
            .collect()
    }

    #[test]
    fn shifts_move_images_within_range_and_repeat_per_batch() {
        // Twenty 7x7 images, each dark but for the centre pixel.
        let (h, w, n) = (7, 7, 20);
        let mut px = vec![0u8; n * h * w];
        for i in 0..n {
            px[i * h * w + 3 * w + 3] = 255;
        }
        let plain = Images::new(px, vec![0; n], h, w).unwrap();
        let idx: Vec<usize> = (0..n).collect();
        assert!(lit(&plain.batch(&idx).unwrap(), h, w)
            .iter()
            .all(|&p| p == (3, 3)));
        let moved = plain.clone().with_shift(2, 9);
        let first = lit(&moved.batch(&idx).unwrap(), h, w);
        assert!(first
            .iter()
            .all(|&(r, c)| (1..=5).contains(&r) && (1..=5).contains(&c)));
        // Twenty draws from 25 offsets: not all equal, and the same batch draws the same again.
        assert!(first.iter().any(|&p| p != first[0]), "{first:?}");
        assert_eq!(lit(&moved.batch(&idx).unwrap(), h, w), first);
        // Another batch (another order) draws afresh; subsets keep the augmentation.
        let rev: Vec<usize> = idx.iter().rev().copied().collect();
        let second = lit(&moved.batch(&rev).unwrap(), h, w);
        assert_ne!(second.iter().rev().copied().collect::<Vec<_>>(), first);
        assert!(lit(
            &moved.subset(&[0, 1, 2, 3]).batch(&[0, 1, 2, 3]).unwrap(),
            h,
            w
        )
        .iter()
        .any(|&p| p != (3, 3)));
        // A shift of 0 is none.
        assert!(lit(&plain.with_shift(0, 9).batch(&idx).unwrap(), h, w)
            .iter()
            .all(|&p| p == (3, 3)));
    }
}
