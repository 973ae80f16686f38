//! `Tensor::try_unwrap_vec`: the buffer is handed over only when no other handle can see it.

use ptm_tensor::{Device, Tensor};

fn tensor(v: Vec<f32>) -> Tensor {
    Tensor::from_vec(v, [2, 3], &Device::Cpu).unwrap()
}

#[test]
fn a_sole_owner_gets_the_same_buffer_back() {
    let v = vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let ptr = v.as_ptr();
    let out = tensor(v).try_unwrap_vec::<f32>().expect("sole owner");
    assert_eq!(out.as_ptr(), ptr, "the buffer was copied");
    assert_eq!(out, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
}

#[test]
fn shared_or_partial_storage_is_given_back_unchanged() {
    let values = vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    // A clone, a variable handle, a view and a result that keeps its input in the graph all
    // share the storage.
    let t = tensor(values.clone());
    let clone = t.clone();
    let back = t.try_unwrap_vec::<f32>().expect_err("a clone shares it");
    assert_eq!(back.to_vec::<f32>().unwrap(), values);
    drop(clone);

    let t = tensor(values.clone());
    let var = t.as_var();
    let back = t
        .try_unwrap_vec::<f32>()
        .expect_err("the variable shares it");
    drop(back);
    let y = var.mul_scalar(2.0).unwrap();
    let back = var
        .try_unwrap_vec::<f32>()
        .expect_err("the graph of y holds it");
    assert_eq!(back.to_vec::<f32>().unwrap(), values);
    drop(y);
    assert_eq!(back.try_unwrap_vec::<f32>().unwrap(), values);

    // Part of a storage, a transposed view, another dtype.
    let t = tensor(values.clone());
    let row = t.narrow(0, 1, 1).unwrap();
    drop(t);
    let row = row.try_unwrap_vec::<f32>().expect_err("a narrowed view");
    assert_eq!(row.to_vec::<f32>().unwrap(), vec![4.0, 5.0, 6.0]);
    let tr = tensor(values.clone()).t().unwrap();
    let tr = tr.try_unwrap_vec::<f32>().expect_err("a transposed view");
    assert_eq!(
        tr.to_vec::<f32>().unwrap(),
        vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
    );
    let t = tensor(values.clone())
        .try_unwrap_vec::<f64>()
        .expect_err("f32 is not f64");
    assert_eq!(t.to_vec::<f32>().unwrap(), values);
}
