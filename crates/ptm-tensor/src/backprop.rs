//! Reverse-mode autograd: `loss.backward()` walks the recorded ops from the loss back to the
//! variables and returns their gradients.
//!
//! Gradients are computed with ordinary tensor ops under a no-grad scope, so every backward rule
//! reads like the math and runs through the same kernels as the forward pass.

use crate::error::{Error, Result};
use crate::op::{BinaryOp, Op, ReduceOp, UnaryOp};
use crate::tensor::TensorId;
use crate::{coverage, DType, Shape, Tensor};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

thread_local! {
    static NO_GRAD_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Whether ops on this thread record the graph (false inside a [`no_grad`] scope).
pub fn is_grad_enabled() -> bool {
    NO_GRAD_DEPTH.with(|d| d.get() == 0)
}

/// While the returned guard lives, ops on this thread record no graph (inference, optimizer steps).
pub fn no_grad() -> NoGradGuard {
    NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
    NoGradGuard(())
}

/// Restores gradient recording when dropped. See [`no_grad`].
#[must_use = "gradients are disabled only while the guard lives"]
pub struct NoGradGuard(());

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Gradients keyed by the tensor they belong to.
#[derive(Clone, Debug, Default)]
pub struct GradStore(HashMap<TensorId, Tensor>);

impl GradStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// The gradient of `t`, if it received one.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.0.get(&t.id())
    }
    /// Takes the gradient of `t` out of the store.
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.0.remove(&t.id())
    }
    /// Sets the gradient of `t`.
    pub fn insert(&mut self, t: &Tensor, grad: Tensor) {
        self.0.insert(t.id(), grad);
    }
    /// Number of gradients held.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the store holds no gradient.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Adds `grad` to the gradient held for `id` (or stores it).
    fn accumulate(&mut self, id: TensorId, grad: Tensor) -> Result<()> {
        let sum = match self.0.remove(&id) {
            Some(prev) => prev.add(&grad)?,
            None => grad,
        };
        self.0.insert(id, sum);
        Ok(())
    }
}

/// The tracked nodes reachable from `root`, each after all the nodes that consume it.
fn sorted_nodes(root: &Tensor) -> Vec<Tensor> {
    // Iterative post-order DFS: a deep graph (hundreds of layers) must not overflow the stack.
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !seen.insert(node.id()) {
            continue;
        }
        let inputs: Vec<Tensor> = match node.op() {
            Some(op) => op
                .inputs()
                .into_iter()
                .filter(|t| t.tracks_grad())
                .cloned()
                .collect(),
            None => vec![],
        };
        stack.push((node, true));
        for t in inputs {
            if !seen.contains(&t.id()) {
                stack.push((t, false));
            }
        }
    }
    order.reverse();
    order
}

impl Tensor {
    /// Gradients of this scalar with respect to every variable it depends on.
    pub fn backward(&self) -> Result<GradStore> {
        let mut store = GradStore::new();
        self.backward_into(&mut store)?;
        Ok(store)
    }

    /// Like [`Tensor::backward`], adding into the gradients already in `store`: gradient
    /// accumulation over several micro-batches.
    pub fn backward_into(&self, store: &mut GradStore) -> Result<()> {
        if self.elem_count() != 1 {
            return Err(Error::Backward(format!(
                "needs a one-element loss, got shape {}; reduce it first (e.g. sum_all or mean_all)",
                self.shape()
            )));
        }
        if !self.tracks_grad() {
            return Err(Error::Backward(
                "the loss does not depend on any variable".into(),
            ));
        }
        let _guard = no_grad();
        let mut pending = GradStore::new();
        pending.accumulate(self.id(), self.ones_like()?)?;
        for node in sorted_nodes(self) {
            let Some(grad) = pending.0.remove(&node.id()) else {
                continue;
            };
            let Some(op) = node.op() else {
                // A variable: its gradient is a result.
                store.accumulate(node.id(), grad)?;
                continue;
            };
            coverage::record(op.kind());
            for (input, g) in input_grads(op, &node, &grad)? {
                if input.tracks_grad() {
                    pending.accumulate(input.id(), g)?;
                }
            }
        }
        Ok(())
    }
}

/// Sums `grad` over the dims along which a tensor of `shape` was broadcast to `grad`'s shape.
pub(crate) fn sum_to_shape(grad: &Tensor, shape: &Shape) -> Result<Tensor> {
    if grad.shape() == shape {
        return Ok(grad.clone());
    }
    let extra = grad.rank() - shape.rank();
    let dims: Vec<usize> = (0..grad.rank())
        .filter(|&i| i < extra || (shape.dims()[i - extra] == 1 && grad.dims()[i] != 1))
        .collect();
    grad.sum_keepdim(dims.as_slice())?.reshape(shape)
}

/// Gradient of a where-style mask (`u32` 0/1) as a float tensor of `dtype`.
fn mask_f(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    if mask.device().is_cuda() {
        // Device masks are selected rather than cast (integer casts run on the host only).
        let dev = mask.device();
        return mask.where_cond(
            &Tensor::scalar(1.0, dtype, &dev)?,
            &Tensor::scalar(0.0, dtype, &dev)?,
        );
    }
    mask.to_dtype(dtype)
}

/// The gradient contributions of one node to each of its inputs.
fn input_grads(op: &Op, out: &Tensor, g: &Tensor) -> Result<Vec<(Tensor, Tensor)>> {
    let one = |t: &Tensor, gt: Tensor| Ok(vec![(t.clone(), gt)]);
    match op {
        Op::Unary(x, u) => {
            let gx = match *u {
                UnaryOp::Neg => g.neg()?,
                UnaryOp::Abs => g.mul(&x.sign()?)?,
                UnaryOp::Sign => g.zeros_like()?,
                UnaryOp::Exp => g.mul(out)?,
                UnaryOp::Log => g.div(x)?,
                UnaryOp::Sqrt => g.div(out)?.affine(0.5, 0.0)?,
                UnaryOp::Rsqrt => g.mul(&out.powf(3.0)?)?.affine(-0.5, 0.0)?,
                UnaryOp::PowF(e) => g.mul(&x.powf(e - 1.0)?)?.affine(e, 0.0)?,
                UnaryOp::Tanh => g.mul(&out.mul(out)?.neg()?.add_scalar(1.0)?)?,
                UnaryOp::Sigmoid => g.mul(&out.mul(&out.neg()?.add_scalar(1.0)?)?)?,
                UnaryOp::Relu => g.mul(&mask_f(&x.gt_scalar(0.0)?, x.dtype())?)?,
                UnaryOp::GeluTanh => g.mul(&x.elementwise_grad(*u)?)?,
                UnaryOp::GeluErf => g.mul(&x.elementwise_grad(*u)?)?,
                UnaryOp::Silu => g.mul(&x.elementwise_grad(*u)?)?,
                UnaryOp::AddScalar(_) => g.clone(),
                UnaryOp::MulScalar(c) => g.affine(c, 0.0)?,
            };
            one(x, gx)
        }
        Op::Binary(a, b, bop) => {
            // A side that tracks no gradient gets none computed (a frozen scale, a mask): its
            // product would be as large as the output and thrown away.
            let side = |x: &Tensor, f: &dyn Fn() -> Result<Tensor>| -> Result<Option<Tensor>> {
                if x.tracks_grad() {
                    Ok(Some(sum_to_shape(&f()?, x.shape())?))
                } else {
                    Ok(None)
                }
            };
            let (ga, gb) = match bop {
                BinaryOp::Add => (side(a, &|| Ok(g.clone()))?, side(b, &|| Ok(g.clone()))?),
                BinaryOp::Sub => (side(a, &|| Ok(g.clone()))?, side(b, &|| g.neg())?),
                BinaryOp::Mul => (side(a, &|| g.mul(b))?, side(b, &|| g.mul(a))?),
                BinaryOp::Div => (
                    side(a, &|| g.div(b))?,
                    side(b, &|| g.mul(a)?.div(&b.mul(b)?)?.neg())?,
                ),
                BinaryOp::Maximum | BinaryOp::Minimum => {
                    // The winner takes the gradient; on a tie each side takes half, as PyTorch.
                    let wins = if *bop == BinaryOp::Maximum {
                        a.gt(b)?
                    } else {
                        a.lt(b)?
                    };
                    let ties = a.eq(b)?;
                    let share_a = mask_f(&wins, g.dtype())?
                        .add(&mask_f(&ties, g.dtype())?.affine(0.5, 0.0)?)?;
                    let share_b = share_a.neg()?.add_scalar(1.0)?;
                    (side(a, &|| g.mul(&share_a))?, side(b, &|| g.mul(&share_b))?)
                }
            };
            Ok([(a, ga), (b, gb)]
                .into_iter()
                .filter_map(|(x, gx)| gx.map(|gx| (x.clone(), gx)))
                .collect())
        }
        Op::WhereCond(mask, t, f) => {
            let zero = Tensor::zeros((), g.dtype(), &g.device())?;
            let gt = mask.where_cond(g, &zero)?;
            let gf = mask.where_cond(&zero, g)?;
            Ok(vec![
                (t.clone(), sum_to_shape(&gt, t.shape())?),
                (f.clone(), sum_to_shape(&gf, f.shape())?),
            ])
        }
        Op::Reduce(x, rop, dims) => {
            let gb = g.broadcast_as(x.shape())?;
            let gx = match rop {
                ReduceOp::Sum => gb,
                ReduceOp::Max | ReduceOp::Min => {
                    // Ties share the gradient evenly, as torch.amax / amin.
                    let hit = mask_f(&x.eq(&out.broadcast_as(x.shape())?)?, x.dtype())?;
                    let count = hit.sum_keepdim(dims.as_slice())?;
                    gb.mul(&hit)?.div(&count.broadcast_as(x.shape())?)?
                }
            };
            one(x, gx)
        }
        Op::Matmul(a, b) => {
            // Only for inputs that want one: a frozen weight's gradient would cost as much as
            // the forward product.
            let mut res = vec![];
            if a.tracks_grad() {
                let ga = g.matmul(&b.transpose(-2, -1)?)?;
                res.push((a.clone(), sum_to_shape(&ga, a.shape())?));
            }
            if b.tracks_grad() {
                let gb = a.transpose(-2, -1)?.matmul(g)?;
                res.push((b.clone(), sum_to_shape(&gb, b.shape())?));
            }
            Ok(res)
        }
        Op::Reshape(x) => one(x, g.reshape(x.shape())?),
        Op::Transpose(x, d0, d1) => one(x, g.transpose(*d0, *d1)?),
        Op::Permute(x, perm) => {
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            one(x, g.permute(&inv)?)
        }
        Op::Narrow(x, dim, start) => {
            // Pad the gradient with zeros back to the input's extent along `dim`.
            let (dim, start) = (*dim, *start);
            let after = x.dims()[dim] - start - g.dims()[dim];
            let zeros = |n: usize| {
                let mut d = x.dims().to_vec();
                d[dim] = n;
                Tensor::zeros(d, g.dtype(), &g.device())
            };
            let mut pieces = vec![];
            if start > 0 {
                pieces.push(zeros(start)?);
            }
            pieces.push(g.clone());
            if after > 0 {
                pieces.push(zeros(after)?);
            }
            one(x, Tensor::cat(&pieces, dim)?)
        }
        Op::Broadcast(x) => one(x, sum_to_shape(g, x.shape())?),
        Op::Copy(x) => one(x, g.clone()),
        Op::Cat(xs, dim) => {
            let mut start = 0;
            let mut res = vec![];
            for x in xs {
                let n = x.dims()[*dim];
                res.push((x.clone(), g.narrow(*dim, start, n)?));
                start += n;
            }
            Ok(res)
        }
        Op::IndexSelect(x, ids, dim) => one(x, x.zeros_like()?.index_add(*dim, ids, g)?),
        Op::Gather(x, ids, dim) => one(x, x.zeros_like()?.scatter_add(*dim, ids, g)?),
        Op::Cast(x) => one(x, g.to_dtype(x.dtype())?),
        Op::Softmax(x) => one(x, crate::ops::nn::softmax_backward(out, g)?),
        Op::LogSoftmax(x) => one(x, crate::ops::nn::log_softmax_backward(out, g)?),
        Op::LayerNorm {
            x,
            weight,
            bias,
            eps,
        } => {
            let (gx, gw, gb) = crate::ops::nn::layer_norm_backward(x, weight.as_ref(), *eps, g)?;
            let mut res = vec![(x.clone(), gx)];
            if let Some(w) = weight {
                res.push((w.clone(), gw));
            }
            if let Some(b) = bias {
                res.push((b.clone(), gb));
            }
            Ok(res)
        }
        Op::CrossEntropy {
            logits,
            targets,
            ignore_index,
        } => one(
            logits,
            crate::ops::nn::cross_entropy_backward(logits, targets, *ignore_index, g)?,
        ),
        Op::LinearCrossEntropy {
            hidden,
            weight,
            grad_hidden,
            grad_weight,
        } => {
            let mut res = vec![];
            if let Some(gh) = grad_hidden {
                res.push((hidden.clone(), gh.mul(g)?));
            }
            if let Some(gw) = grad_weight {
                res.push((weight.clone(), gw.mul(g)?));
            }
            Ok(res)
        }
        Op::Unfold(x, geom) => one(x, crate::ops::conv::unfold_backward(g, geom, x.dtype())?),
        Op::Attention { q, k, v, saved } => {
            let (dq, dk, dv) =
                crate::ops::attention::fused_attention_backward(q, k, v, saved, out, g)?;
            Ok(vec![(q.clone(), dq), (k.clone(), dk), (v.clone(), dv)])
        }
    }
}
