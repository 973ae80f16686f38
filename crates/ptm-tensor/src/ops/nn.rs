//! Neural-network ops: softmax, log-softmax, layer norm, cross-entropy (fused kernels with their
//! own backward), dropout and scaled-dot-product attention (composed of differentiable ops).

use crate::error::{Error, Result};
use crate::op::Op;
use crate::storage::{float_dispatch, Compute};
use crate::{DType, Dim, Rng, Tensor};
use ptm_cpu::Element;
use ptm_cpu::{cross_entropy as ce, layer_norm as ln, softmax as sm, Float};

/// A row-wise forward kernel of ptm-cpu, generic over the compute type.
trait RowForward {
    const NAME: &'static str;
    fn run<T: Float>(x: &[T], y: &mut [T], d: usize);
}

/// A row-wise backward kernel from the forward output `y` and upstream gradient `dy`.
trait RowBackward {
    const NAME: &'static str;
    fn run<T: Float>(y: &[T], dy: &[T], dx: &mut [T], d: usize);
}

struct Softmax;
struct LogSoftmax;

impl RowForward for Softmax {
    const NAME: &'static str = "softmax";
    fn run<T: Float>(x: &[T], y: &mut [T], d: usize) {
        sm::softmax_fwd(x, y, d)
    }
}
impl RowBackward for Softmax {
    const NAME: &'static str = "softmax";
    fn run<T: Float>(y: &[T], dy: &[T], dx: &mut [T], d: usize) {
        sm::softmax_bwd(y, dy, dx, d)
    }
}
impl RowForward for LogSoftmax {
    const NAME: &'static str = "log_softmax";
    fn run<T: Float>(x: &[T], y: &mut [T], d: usize) {
        sm::log_softmax_fwd(x, y, d)
    }
}
impl RowBackward for LogSoftmax {
    const NAME: &'static str = "log_softmax";
    fn run<T: Float>(y: &[T], dy: &[T], dx: &mut [T], d: usize) {
        sm::log_softmax_bwd(y, dy, dx, d)
    }
}

impl Tensor {
    /// Runs a row kernel over the last dim and records `op`.
    fn last_dim_kernel<K: RowForward>(&self, op: impl FnOnce(Tensor) -> Op) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            let _ = op;
            return crate::cuda::softmax_last(self, K::NAME == "log_softmax");
        }
        let dtype = self.dtype();
        let d = *self.dims().last().unwrap_or(&1);
        let storage = float_dispatch!(dtype, K::NAME, T => {
            let x = T::read(self.cpu("softmax")?, self.layout());
            let mut y = vec![T::ZERO; x.len()];
            K::run(&x, &mut y, d);
            T::write(y, dtype)
        });
        Ok(Tensor::from_storage(
            storage,
            self.shape().clone(),
            Some(op(self.clone())),
        ))
    }

    /// Softmax along `dim`.
    pub fn softmax(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.resolve(self.shape(), "softmax")?;
        if d + 1 != self.rank() {
            return self.transpose(d, -1)?.softmax(-1)?.transpose(d, -1);
        }
        self.last_dim_kernel::<Softmax>(Op::Softmax)
    }

    /// Log-softmax along `dim`.
    pub fn log_softmax(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.resolve(self.shape(), "log_softmax")?;
        if d + 1 != self.rank() {
            return self.transpose(d, -1)?.log_softmax(-1)?.transpose(d, -1);
        }
        self.last_dim_kernel::<LogSoftmax>(Op::LogSoftmax)
    }

    /// Layer normalisation over the last dim with optional `weight` and `bias` of shape `[d]`.
    pub fn layer_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let d = *self.dims().last().ok_or_else(|| Error::BadShape {
            op: "layer_norm",
            shape: self.shape().clone(),
            msg: "needs at least one dim".into(),
        })?;
        for (p, what) in [(weight, "weight"), (bias, "bias")] {
            if let Some(p) = p {
                self.check_same_dtype(p, "layer_norm")?;
                if p.dims() != [d] {
                    return Err(Error::ShapeMismatch {
                        op: "layer_norm",
                        lhs: self.shape().clone(),
                        rhs: p.shape().clone(),
                        note: format!("{what} must be [{d}]"),
                    });
                }
            }
        }
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            return crate::cuda::layer_norm(self, weight, bias, eps);
        }
        let dtype = self.dtype();
        let storage = float_dispatch!(dtype, "layer_norm", T => {
            let x = T::read(self.cpu("layer_norm")?, self.layout());
            let w = weight.map(|w| w.cpu("layer_norm").map(|s| T::read(s, w.layout()))).transpose()?;
            let b = bias.map(|b| b.cpu("layer_norm").map(|s| T::read(s, b.layout()))).transpose()?;
            let mut y = vec![T::ZERO; x.len()];
            ln::layer_norm_fwd(&x, w.as_deref(), b.as_deref(), T::from_f64(eps), d, &mut y);
            T::write(y, dtype)
        });
        let op = Op::LayerNorm {
            x: self.clone(),
            weight: weight.cloned(),
            bias: bias.cloned(),
            eps,
        };
        Ok(Tensor::from_storage(
            storage,
            self.shape().clone(),
            Some(op),
        ))
    }

    /// Mean cross-entropy between `logits` (`[..., classes]`) and integer `targets` (`[...]`),
    /// skipping targets equal to `ignore_index` (PyTorch uses -100). As in PyTorch, the mean of
    /// zero counted targets is NaN.
    pub fn cross_entropy(&self, targets: &Tensor, ignore_index: i64) -> Result<Tensor> {
        let c = *self.dims().last().unwrap_or(&0);
        if c == 0 {
            return Err(Error::BadShape {
                op: "cross_entropy",
                shape: self.shape().clone(),
                msg: "logits need a non-empty last (class) dim".into(),
            });
        }
        if targets.dims() != &self.dims()[..self.rank() - 1] {
            return Err(Error::ShapeMismatch {
                op: "cross_entropy",
                lhs: self.shape().clone(),
                rhs: targets.shape().clone(),
                note: "targets must have the logits' shape without the class dim".into(),
            });
        }
        let t = read_targets(targets, c, ignore_index)?;
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            return crate::cuda::cross_entropy(self, targets, &t, ignore_index);
        }
        let dtype = self.dtype();
        let storage = float_dispatch!(dtype, "cross_entropy", T => {
            let x = T::read(self.cpu("cross_entropy")?, self.layout());
            let (total, count) = ce::cross_entropy_fwd(&x, &t, c, ignore_index);
            T::write(vec![T::from_f64(total / count as f64)], dtype)
        });
        let op = Op::CrossEntropy {
            logits: self.clone(),
            targets: targets.clone(),
            ignore_index,
        };
        Ok(Tensor::from_storage(storage, ().into(), Some(op)))
    }

    /// Inverted dropout: zeroes each element with probability `p` and scales the rest by
    /// `1/(1-p)`. Call it in training only; the mask comes from `rng`, so a seed fixes it.
    pub fn dropout(&self, p: f64, rng: &mut Rng) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(crate::error::invalid(
                "dropout",
                format!("probability {p} is outside [0, 1]"),
            ));
        }
        if p == 0.0 {
            return Ok(self.clone());
        }
        let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        let mask: Vec<f64> = (0..self.elem_count())
            .map(|_| if rng.uniform() < p { 0.0 } else { scale })
            .collect();
        let mask = Tensor::from_vec(mask, self.shape(), &self.device())?.to_dtype(self.dtype())?;
        self.mul(&mask)
    }
}

pub(crate) fn read_targets(targets: &Tensor, c: usize, ignore_index: i64) -> Result<Vec<i64>> {
    if !matches!(targets.dtype(), DType::U32 | DType::I64) {
        return Err(Error::UnsupportedDType {
            op: "cross_entropy",
            dtype: targets.dtype(),
            note: "targets must be u32 or i64".into(),
        });
    }
    // Checked on the host whatever the targets' device: a bad class must never reach a kernel.
    let t = targets
        .to_device(&crate::Device::Cpu)?
        .to_dtype(DType::I64)?
        .to_vec::<i64>()?;
    if let Some(&bad) = t
        .iter()
        .find(|&&v| v != ignore_index && (v < 0 || v as usize >= c))
    {
        return Err(Error::IndexOutOfRange {
            op: "cross_entropy",
            index: bad,
            size: c,
            note: format!("target class (ignore_index is {ignore_index})"),
        });
    }
    Ok(t)
}

pub(crate) fn softmax_backward(y: &Tensor, g: &Tensor) -> Result<Tensor> {
    row_backward::<Softmax>(y, g)
}

pub(crate) fn log_softmax_backward(y: &Tensor, g: &Tensor) -> Result<Tensor> {
    row_backward::<LogSoftmax>(y, g)
}

fn row_backward<K: RowBackward>(y: &Tensor, g: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if y.device().is_cuda() {
        return crate::cuda::softmax_last_backward(y, g, K::NAME == "log_softmax");
    }
    let dtype = y.dtype();
    let d = *y.dims().last().unwrap_or(&1);
    let storage = float_dispatch!(dtype, K::NAME, T => {
        let (yv, gv) = (T::read(y.cpu("softmax_backward")?, y.layout()), T::read(g.cpu("softmax_backward")?, g.layout()));
        let mut dx = vec![T::ZERO; yv.len()];
        K::run(&yv, &gv, &mut dx, d);
        T::write(dx, dtype)
    });
    Ok(Tensor::from_storage(storage, y.shape().clone(), None))
}

pub(crate) fn layer_norm_backward(
    x: &Tensor,
    w: Option<&Tensor>,
    eps: f64,
    g: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    #[cfg(feature = "cuda")]
    if x.device().is_cuda() {
        return crate::cuda::layer_norm_backward(x, w, eps, g);
    }
    let dtype = x.dtype();
    let d = *x.dims().last().unwrap_or(&1);
    let (gx, gw, gb) = float_dispatch!(dtype, "layer_norm", T => {
        let (xv, gv) = (T::read(x.cpu("layer_norm_backward")?, x.layout()), T::read(g.cpu("layer_norm_backward")?, g.layout()));
        let wv = w.map(|w| w.cpu("layer_norm_backward").map(|s| T::read(s, w.layout()))).transpose()?;
        let (mut dx, mut dw, mut db) = (vec![T::ZERO; xv.len()], vec![T::ZERO; d], vec![T::ZERO; d]);
        ln::layer_norm_bwd(&xv, wv.as_deref(), T::from_f64(eps), d, &gv, &mut dx, Some(&mut dw), Some(&mut db));
        (T::write(dx, dtype), T::write(dw, dtype), T::write(db, dtype))
    });
    Ok((
        Tensor::from_storage(gx, x.shape().clone(), None),
        Tensor::from_storage(gw, vec![d].into(), None),
        Tensor::from_storage(gb, vec![d].into(), None),
    ))
}

pub(crate) fn cross_entropy_backward(
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: i64,
    g: &Tensor,
) -> Result<Tensor> {
    let dtype = logits.dtype();
    let c = *logits.dims().last().unwrap_or(&1);
    let t = read_targets(targets, c, ignore_index)?;
    #[cfg(feature = "cuda")]
    if logits.device().is_cuda() {
        return crate::cuda::cross_entropy_backward(logits, &t, ignore_index, g);
    }
    let count = t.iter().filter(|&&v| v != ignore_index).count();
    let upstream = g.to_f64_vec()?[0];
    let scale = if count == 0 {
        0.0
    } else {
        upstream / count as f64
    };
    let storage = float_dispatch!(dtype, "cross_entropy", T => {
        let x = T::read(logits.cpu("cross_entropy_backward")?, logits.layout());
        let mut dx = vec![T::ZERO; x.len()];
        ce::cross_entropy_bwd(&x, &t, c, ignore_index, T::from_f64(scale), &mut dx);
        T::write(dx, dtype)
    });
    Ok(Tensor::from_storage(storage, logits.shape().clone(), None))
}

/// Options for [`scaled_dot_product_attention`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AttentionOptions<'a> {
    /// Each query sees only keys at or before its own position (prefix keys are always visible).
    pub causal: bool,
    /// `[batch, keys]`, nonzero for real tokens and 0 for padding, as Hugging Face's `attention_mask`.
    pub key_padding_mask: Option<&'a Tensor>,
    /// Extra keys and values `[batch or 1, heads, prefix, head_dim]` placed before the keys, visible to
    /// every query (prefix-tuning).
    pub prefix: Option<(&'a Tensor, &'a Tensor)>,
    /// Score scale; `1/sqrt(head_dim)` when `None`.
    pub scale: Option<f64>,
    /// Dropout on the attention weights while training: probability and the seed of its mask.
    pub dropout: Option<(f64, u64)>,
}

/// The most negative finite value of a float dtype: what masked scores are set to, as PyTorch's
/// `finfo.min`, so a fully masked row gives uniform weights instead of NaN.
fn min_finite(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => half::f16::MIN.to_f64(),
        DType::BF16 => half::bf16::MIN.to_f64(),
        _ => f32::MIN as f64,
    }
}

/// `softmax(q·kᵀ·scale + mask)·v` over `[batch, heads, seq, head_dim]` tensors, with causal and
/// padding masks and optional prefix keys/values.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: AttentionOptions,
) -> Result<Tensor> {
    let (b, h, tq, d) = q.shape().dims4("attention (q)")?;
    let (bk, hk, tk, dk) = k.shape().dims4("attention (k)")?;
    if (bk, hk, dk) != (b, h, d) || v.dims() != k.dims() {
        return Err(Error::ShapeMismatch {
            op: "attention",
            lhs: q.shape().clone(),
            rhs: k.shape().clone(),
            note: format!("k and v must be [{b}, {h}, keys, {d}], v {}", v.shape()),
        });
    }
    let (k, v, p) = match opts.prefix {
        Some((pk, pv)) => {
            let p = pk.dims().get(2).copied().unwrap_or(0);
            let want = [b, h, p, d];
            let pk = pk.broadcast_as(want).map_err(|_| bad_prefix(pk, want))?;
            let pv = pv.broadcast_as(want).map_err(|_| bad_prefix(pv, want))?;
            (
                Tensor::cat(&[pk, k.clone()], 2)?,
                Tensor::cat(&[pv, v.clone()], 2)?,
                p,
            )
        }
        None => (k.clone(), v.clone(), 0),
    };
    let scale = opts.scale.unwrap_or(1.0 / (d as f64).sqrt());
    let dropout = matches!(opts.dropout, Some((rate, _)) if rate > 0.0);
    if !dropout {
        // The fused kernel: same masking, the score matrix never stored.
        let padding = match opts.key_padding_mask {
            Some(m) => {
                check_padding(m, b, tk)?;
                Some(m.to_f64_vec()?.into_iter().map(|x| x as f32).collect())
            }
            None => None,
        };
        return crate::ops::attention::fused_attention(q, &k, &v, opts.causal, padding, p, scale);
    }
    let scores = q.matmul(&k.transpose(2, 3)?)?.mul_scalar(scale)?;
    let mask = attention_mask(&opts, b, tq, tk, p, &q.device())?;
    let scores = match mask {
        Some(allowed) => scores.masked_fill(&allowed.eq_scalar(0.0)?, min_finite(q.dtype()))?,
        None => scores,
    };
    let weights = scores.softmax(-1)?;
    let weights = match opts.dropout {
        Some((p, seed)) if p > 0.0 => weights.dropout(p, &mut crate::Rng::new(seed))?,
        _ => weights,
    };
    weights.matmul(&v)
}

fn bad_prefix(t: &Tensor, want: [usize; 4]) -> Error {
    Error::ShapeMismatch {
        op: "attention",
        lhs: t.shape().clone(),
        rhs: want.to_vec().into(),
        note: "prefix keys/values must broadcast to [batch, heads, prefix, head_dim]".into(),
    }
}

/// An error unless the padding mask is `[batch, keys]`.
fn check_padding(m: &Tensor, b: usize, tk: usize) -> Result<()> {
    if m.dims() != [b, tk] {
        return Err(Error::ShapeMismatch {
            op: "attention",
            lhs: m.shape().clone(),
            rhs: vec![b, tk].into(),
            note: "key_padding_mask must be [batch, keys]".into(),
        });
    }
    Ok(())
}

/// The `[batch or 1, 1, tq, p + tk]` u32 mask of allowed (query, key) pairs, or `None` if all are.
/// Built on `device`, where the scores it masks live.
fn attention_mask(
    opts: &AttentionOptions,
    b: usize,
    tq: usize,
    tk: usize,
    p: usize,
    device: &crate::Device,
) -> Result<Option<Tensor>> {
    if !opts.causal && opts.key_padding_mask.is_none() {
        return Ok(None);
    }
    let pad: Option<Vec<f64>> = match opts.key_padding_mask {
        Some(m) => {
            check_padding(m, b, tk)?;
            Some(m.to_f64_vec()?)
        }
        None => None,
    };
    let nb = if pad.is_some() { b } else { 1 };
    let total = p + tk;
    let mut allowed = vec![1u32; nb * tq * total];
    for bi in 0..nb {
        for i in 0..tq {
            for j in 0..tk {
                // Queries are the last tq of the tk positions (a KV cache holds the earlier ones).
                let future = opts.causal && j > i + (tk - tq.min(tk));
                let padded = pad.as_ref().is_some_and(|m| m[bi * tk + j] == 0.0);
                if future || padded {
                    allowed[(bi * tq + i) * total + p + j] = 0;
                }
            }
        }
    }
    Ok(Some(Tensor::from_vec(allowed, [nb, 1, tq, total], device)?))
}
