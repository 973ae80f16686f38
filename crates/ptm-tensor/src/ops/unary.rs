//! Elementwise ops of one float tensor.

use crate::error::Result;
use crate::op::{Op, UnaryOp};
use crate::storage::{float_dispatch, Compute};
use crate::Tensor;
use ptm_cpu::gelu::{gelu_erf, gelu_erf_grad, gelu_tanh, gelu_tanh_grad};
use ptm_cpu::Float;

impl UnaryOp {
    /// The op's name, for errors.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::PowF(_) => "powf",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::GeluTanh => "gelu",
            UnaryOp::GeluErf => "gelu_erf",
            UnaryOp::Silu => "silu",
            UnaryOp::AddScalar(_) => "add_scalar",
            UnaryOp::MulScalar(_) => "mul_scalar",
        }
    }
}

/// Applies `op` in place. The match sits outside the loops so each arm is a tight loop.
fn apply<T: Float>(op: UnaryOp, v: &mut [T]) {
    macro_rules! each {
        (|$x:ident| $e:expr) => {
            T::map_slice(v, |$x| $e)
        };
    }
    match op {
        UnaryOp::Neg => each!(|x| -x),
        UnaryOp::Abs => each!(|x| x.abs()),
        UnaryOp::Sign => each!(|x| if x > T::ZERO {
            T::ONE
        } else if x < T::ZERO {
            -T::ONE
        } else {
            x
        }),
        UnaryOp::Exp => each!(|x| x.exp()),
        UnaryOp::Log => each!(|x| x.ln()),
        UnaryOp::Sqrt => each!(|x| x.sqrt()),
        UnaryOp::Rsqrt => each!(|x| T::ONE / x.sqrt()),
        UnaryOp::PowF(e) => {
            let e = T::from_f64(e);
            each!(|x| x.powf(e))
        }
        UnaryOp::Tanh => each!(|x| x.tanh()),
        UnaryOp::Sigmoid => each!(|x| x.sigmoid()),
        UnaryOp::Relu => each!(|x| if x > T::ZERO { x } else { T::ZERO }),
        UnaryOp::GeluTanh => each!(|x| gelu_tanh(x)),
        UnaryOp::GeluErf => each!(|x| gelu_erf(x)),
        UnaryOp::Silu => each!(|x| x * x.sigmoid()),
        UnaryOp::AddScalar(c) => {
            let c = T::from_f64(c);
            each!(|x| x + c)
        }
        UnaryOp::MulScalar(c) => {
            let c = T::from_f64(c);
            each!(|x| x * c)
        }
    }
}

/// d op(x) / dx for the ops whose derivative is not a short expression of other ops.
fn apply_grad<T: Float>(op: UnaryOp, v: &mut [T]) {
    match op {
        UnaryOp::GeluTanh => T::map_slice(v, gelu_tanh_grad),
        UnaryOp::GeluErf => T::map_slice(v, gelu_erf_grad),
        UnaryOp::Silu => T::map_slice(v, |x| {
            let s = x.sigmoid();
            s * (T::ONE + x * (T::ONE - s))
        }),
        _ => unreachable!("apply_grad is only called for GELU and SiLU"),
    }
}

impl Tensor {
    fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            return crate::cuda::unary(self, op);
        }
        let dtype = self.dtype();
        let storage = float_dispatch!(dtype, op.name(), T => {
            let mut v = T::read_owned(self.cpu(op.name())?, self.layout());
            apply::<T>(op, &mut v);
            T::write(v, dtype)
        });
        Ok(Tensor::from_storage(
            storage,
            self.shape().clone(),
            Some(Op::Unary(self.clone(), op)),
        ))
    }

    /// The elementwise derivative of GELU / SiLU at this tensor's values (used by backward only).
    pub(crate) fn elementwise_grad(&self, op: UnaryOp) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            return crate::cuda::elementwise_grad(self, op);
        }
        let dtype = self.dtype();
        let storage = float_dispatch!(dtype, op.name(), T => {
            let mut v = T::read_owned(self.cpu(op.name())?, self.layout());
            apply_grad::<T>(op, &mut v);
            T::write(v, dtype)
        });
        Ok(Tensor::from_storage(storage, self.shape().clone(), None))
    }

    /// `-x`
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    /// `|x|`
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    /// `sign(x)`: -1, 0 or 1 (its gradient is zero).
    pub fn sign(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sign)
    }
    /// `e^x`
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    /// `ln x`
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    /// `√x`
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    /// `1/√x`
    pub fn rsqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Rsqrt)
    }
    /// `x^e` for a real exponent.
    pub fn powf(&self, e: f64) -> Result<Tensor> {
        self.unary(UnaryOp::PowF(e))
    }
    /// `tanh x`
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    /// The logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    /// `max(x, 0)`
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    /// GELU, tanh approximation (GPT-2's `gelu_new`).
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::GeluTanh)
    }
    /// GELU, exact erf form (BERT's and ViT's `gelu`).
    pub fn gelu_erf(&self) -> Result<Tensor> {
        self.unary(UnaryOp::GeluErf)
    }
    /// `x · sigmoid(x)`
    pub fn silu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Silu)
    }
    /// `x + c`
    pub fn add_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::AddScalar(c))
    }
    /// `x - c`
    pub fn sub_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::AddScalar(-c))
    }
    /// `x · c`
    pub fn mul_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::MulScalar(c))
    }
    /// `x / c`
    pub fn div_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::MulScalar(1.0 / c))
    }
    /// `x · mul + add`
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        let scaled = if mul == 1.0 {
            self.clone()
        } else {
            self.mul_scalar(mul)?
        };
        if add == 0.0 {
            Ok(scaled)
        } else {
            scaled.add_scalar(add)
        }
    }
}
