//! The record of how a tensor was made: what backward walks.

use crate::Tensor;
use ptm_cpu::conv::Conv2dGeometry;

/// Elementwise ops of one float input. Parameters are kept as f64 so one record serves every dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `|x|`
    Abs,
    /// `sign(x)` (0 at 0); its gradient is 0.
    Sign,
    /// `e^x`
    Exp,
    /// `ln x`
    Log,
    /// `√x`
    Sqrt,
    /// `1/√x`
    Rsqrt,
    /// `x^e`
    PowF(f64),
    /// `tanh x`
    Tanh,
    /// `1/(1+e^-x)`
    Sigmoid,
    /// `max(x, 0)`
    Relu,
    /// GELU, tanh form (GPT-2's `gelu_new`).
    GeluTanh,
    /// GELU, erf form (BERT's `gelu`).
    GeluErf,
    /// `x·sigmoid(x)`
    Silu,
    /// `x + c`
    AddScalar(f64),
    /// `x · c`
    MulScalar(f64),
}

/// Elementwise ops of two inputs with numpy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// elementwise max (ties share the gradient, as PyTorch's `maximum`)
    Maximum,
    /// elementwise min
    Minimum,
}

/// Reductions over a set of dims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Maximum (ties share the gradient, as PyTorch's `amax`).
    Max,
    /// Minimum.
    Min,
}

macro_rules! op_kinds {
    ($($kind:ident),* $(,)?) => {
        /// Every kind of differentiable op the autograd records. The gradient-check suite proves it
        /// has run each of them through `backward` (see [`crate::coverage`]).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum OpKind { $(#[doc = concat!("Ops recorded as `", stringify!($kind), "`.")] $kind),* }

        impl OpKind {
            /// All kinds, in declaration order.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$kind),*];
        }
    };
}

op_kinds!(
    Neg,
    Abs,
    Sign,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    PowF,
    Tanh,
    Sigmoid,
    Relu,
    GeluTanh,
    GeluErf,
    Silu,
    AddScalar,
    MulScalar,
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    WhereCond,
    Sum,
    Max,
    Min,
    Matmul,
    Reshape,
    Transpose,
    Permute,
    Narrow,
    Broadcast,
    Copy,
    Cat,
    IndexSelect,
    Gather,
    Cast,
    Softmax,
    LogSoftmax,
    LayerNorm,
    CrossEntropy,
    LinearCrossEntropy,
    Unfold,
    Attention,
);

/// How a tracked tensor was computed from its inputs.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Unary(Tensor, UnaryOp),
    Binary(Tensor, Tensor, BinaryOp),
    /// `where(mask, on_true, on_false)`; the mask gets no gradient.
    WhereCond(Tensor, Tensor, Tensor),
    /// Reduction over `dims`; the output keeps the reduced dims as size 1.
    Reduce(Tensor, ReduceOp, Vec<usize>),
    Matmul(Tensor, Tensor),
    /// Reshape, squeeze and unsqueeze: any change of shape that keeps the element order.
    Reshape(Tensor),
    Transpose(Tensor, usize, usize),
    Permute(Tensor, Vec<usize>),
    Narrow(Tensor, usize, usize),
    Broadcast(Tensor),
    Copy(Tensor),
    Cat(Vec<Tensor>, usize),
    IndexSelect(Tensor, Tensor, usize),
    Gather(Tensor, Tensor, usize),
    Cast(Tensor),
    /// Softmax over the last dim.
    Softmax(Tensor),
    /// Log-softmax over the last dim.
    LogSoftmax(Tensor),
    LayerNorm {
        x: Tensor,
        weight: Option<Tensor>,
        bias: Option<Tensor>,
        eps: f64,
    },
    CrossEntropy {
        logits: Tensor,
        targets: Tensor,
        ignore_index: i64,
    },
    /// Fused `mean CE(hidden·Wᵀ)`: the gradients were computed with the loss (for an upstream
    /// gradient of 1); backward scales them.
    /// Gradients computed in the forward, each only when its input tracks gradients (a frozen
    /// output layer skips a third of the work).
    LinearCrossEntropy {
        hidden: Tensor,
        weight: Tensor,
        grad_hidden: Option<Tensor>,
        grad_weight: Option<Tensor>,
    },
    Unfold(Tensor, Conv2dGeometry),
    /// Fused scaled-dot-product attention (`k`, `v` with any prefix keys already in front).
    Attention {
        q: Tensor,
        k: Tensor,
        v: Tensor,
        saved: std::sync::Arc<crate::ops::attention::AttentionSaved>,
    },
}

impl Op {
    /// The inputs that may need gradients.
    pub(crate) fn inputs(&self) -> Vec<&Tensor> {
        match self {
            Op::Unary(a, _)
            | Op::Reduce(a, _, _)
            | Op::Reshape(a)
            | Op::Transpose(a, _, _)
            | Op::Permute(a, _)
            | Op::Narrow(a, _, _)
            | Op::Broadcast(a)
            | Op::Copy(a)
            | Op::IndexSelect(a, _, _)
            | Op::Gather(a, _, _)
            | Op::Cast(a)
            | Op::Softmax(a)
            | Op::LogSoftmax(a)
            | Op::Unfold(a, _)
            | Op::CrossEntropy { logits: a, .. } => vec![a],
            Op::Binary(a, b, _) | Op::Matmul(a, b) | Op::WhereCond(_, a, b) => vec![a, b],
            Op::LinearCrossEntropy { hidden, weight, .. } => vec![hidden, weight],
            Op::Attention { q, k, v, .. } => vec![q, k, v],
            Op::Cat(xs, _) => xs.iter().collect(),
            Op::LayerNorm {
                x, weight, bias, ..
            } => std::iter::once(x)
                .chain(weight.as_ref())
                .chain(bias.as_ref())
                .collect(),
        }
    }

    /// The kind, for coverage accounting.
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Unary(_, u) => match u {
                UnaryOp::Neg => OpKind::Neg,
                UnaryOp::Abs => OpKind::Abs,
                UnaryOp::Sign => OpKind::Sign,
                UnaryOp::Exp => OpKind::Exp,
                UnaryOp::Log => OpKind::Log,
                UnaryOp::Sqrt => OpKind::Sqrt,
                UnaryOp::Rsqrt => OpKind::Rsqrt,
                UnaryOp::PowF(_) => OpKind::PowF,
                UnaryOp::Tanh => OpKind::Tanh,
                UnaryOp::Sigmoid => OpKind::Sigmoid,
                UnaryOp::Relu => OpKind::Relu,
                UnaryOp::GeluTanh => OpKind::GeluTanh,
                UnaryOp::GeluErf => OpKind::GeluErf,
                UnaryOp::Silu => OpKind::Silu,
                UnaryOp::AddScalar(_) => OpKind::AddScalar,
                UnaryOp::MulScalar(_) => OpKind::MulScalar,
            },
            Op::Binary(_, _, b) => match b {
                BinaryOp::Add => OpKind::Add,
                BinaryOp::Sub => OpKind::Sub,
                BinaryOp::Mul => OpKind::Mul,
                BinaryOp::Div => OpKind::Div,
                BinaryOp::Maximum => OpKind::Maximum,
                BinaryOp::Minimum => OpKind::Minimum,
            },
            Op::WhereCond(..) => OpKind::WhereCond,
            Op::Reduce(_, r, _) => match r {
                ReduceOp::Sum => OpKind::Sum,
                ReduceOp::Max => OpKind::Max,
                ReduceOp::Min => OpKind::Min,
            },
            Op::Matmul(..) => OpKind::Matmul,
            Op::Reshape(_) => OpKind::Reshape,
            Op::Transpose(..) => OpKind::Transpose,
            Op::Permute(..) => OpKind::Permute,
            Op::Narrow(..) => OpKind::Narrow,
            Op::Broadcast(_) => OpKind::Broadcast,
            Op::Copy(_) => OpKind::Copy,
            Op::Cat(..) => OpKind::Cat,
            Op::IndexSelect(..) => OpKind::IndexSelect,
            Op::Gather(..) => OpKind::Gather,
            Op::Cast(_) => OpKind::Cast,
            Op::Softmax(_) => OpKind::Softmax,
            Op::LogSoftmax(_) => OpKind::LogSoftmax,
            Op::LayerNorm { .. } => OpKind::LayerNorm,
            Op::CrossEntropy { .. } => OpKind::CrossEntropy,
            Op::LinearCrossEntropy { .. } => OpKind::LinearCrossEntropy,
            Op::Unfold(..) => OpKind::Unfold,
            Op::Attention { .. } => OpKind::Attention,
        }
    }
}
