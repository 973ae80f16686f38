//! The `Module` trait: a layer maps a tensor to a tensor, differently in training (dropout on).

use crate::error::Result;
use ptm_tensor::Tensor;

/// A layer with one input and one output.
pub trait Module: Send + Sync {
    /// Applies the layer; `train` turns on what only training does (dropout).
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor>;
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        (**self).forward(x, train)
    }
}

impl<M: Module + ?Sized> Module for std::sync::Arc<M> {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        (**self).forward(x, train)
    }
}
