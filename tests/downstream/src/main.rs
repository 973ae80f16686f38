//! Uses ptm-tensor as a dependency of an unrelated crate.

use ptm_tensor::{DType, Device, Tensor};

fn main() -> ptm_tensor::Result<()> {
    let w = Tensor::ones([3], DType::F32, &Device::Cpu)?.as_var();
    let loss = w.mul_scalar(2.0)?.sum_all()?;
    let g = loss.backward()?.get(&w).cloned().expect("w has a gradient");
    assert_eq!(g.to_vec::<f32>()?, vec![2.0, 2.0, 2.0]);
    println!("ptm-tensor works as a standalone dependency");
    Ok(())
}
