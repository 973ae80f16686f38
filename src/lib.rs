pub use ptm_tensor;
