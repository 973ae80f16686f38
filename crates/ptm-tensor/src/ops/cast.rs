//! Casts between dtypes.

use crate::error::Result;
use crate::op::Op;
use crate::{DType, Tensor};

impl Tensor {
    /// The values converted to `dtype` (rounding to nearest for floats, truncating toward zero and
    /// saturating for float → integer). Gradients flow through float → float casts.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        #[cfg(feature = "cuda")]
        if self.device().is_cuda() {
            return crate::cuda::to_dtype(self, dtype);
        }
        let storage = self.cpu("to_dtype")?.cast(self.layout(), dtype);
        let op = (dtype.is_float() && self.dtype().is_float()).then(|| Op::Cast(self.clone()));
        Ok(Tensor::from_storage(storage, self.shape().clone(), op))
    }
}
