//! One test per class of bad input: each returns an `Err` (never a panic) whose message names the
//! op and the offending shapes, dtypes, indices or values.

use ptm_tensor::{
    scaled_dot_product_attention, AttentionOptions, DType, Device, Error, Rng, Tensor,
};

fn t(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap()
}

fn msg(r: ptm_tensor::Result<Tensor>) -> (Error, String) {
    let e = r.expect_err("bad input must be an error");
    let m = e.to_string();
    (e, m)
}

#[test]
fn shape_mismatch_names_the_op_and_both_shapes() {
    let (e, m) = msg(t(&[2, 3]).add(&t(&[4])));
    assert!(matches!(e, Error::ShapeMismatch { op: "add", .. }), "{e:?}");
    assert!(m.contains("[2, 3]") && m.contains("[4]"), "{m}");
    let (_, m) = msg(t(&[2, 3]).matmul(&t(&[4, 5])));
    assert!(
        m.starts_with("matmul") && m.contains("inner dims 3 and 4"),
        "{m}"
    );
    let (_, m) = msg(t(&[2, 3]).reshape([5]));
    assert!(
        m.contains("reshape") && m.contains("[2, 3]") && m.contains("[5]"),
        "{m}"
    );
    let (_, m) = msg(Tensor::cat(&[t(&[2, 3]), t(&[2, 4])], 0));
    assert!(m.contains("cat") && m.contains("[2, 4]"), "{m}");
    let (_, m) = msg(t(&[2, 8]).layer_norm(Some(&t(&[7])), None, 1e-5));
    assert!(
        m.contains("layer_norm") && m.contains("weight must be [8]"),
        "{m}"
    );
    let (_, m) = msg(t(&[1, 3, 4, 4]).conv2d(&t(&[2, 2, 3, 3]), None, 1, 0));
    assert!(m.contains("conv2d") && m.contains("3 channels"), "{m}");
    let (_, m) =
        msg(t(&[2, 5]).cross_entropy(&Tensor::zeros([3], DType::I64, &Device::Cpu).unwrap(), -100));
    assert!(m.contains("cross_entropy") && m.contains("[3]"), "{m}");
}

#[test]
fn bad_shape_names_what_is_wrong() {
    let e = Tensor::from_vec(vec![1.0f32; 5], [2, 3], &Device::Cpu).unwrap_err();
    assert!(
        matches!(e, Error::BadShape { op: "from_vec", .. }) && e.to_string().contains("5 elements"),
        "{e}"
    );
    let (_, m) = msg(t(&[2, 3]).squeeze(0));
    assert!(m.contains("squeeze") && m.contains("size 2"), "{m}");
    let (_, m) = msg(t(&[2, 3]).permute(&[0, 0]));
    assert!(
        m.contains("permute") && m.contains("not a permutation"),
        "{m}"
    );
    let q = t(&[1, 2, 3]);
    let (_, m) = msg(scaled_dot_product_attention(
        &q,
        &q,
        &q,
        AttentionOptions::default(),
    ));
    assert!(m.contains("attention") && m.contains("rank 4"), "{m}");
    let no_classes =
        t(&[2, 0]).cross_entropy(&Tensor::zeros([2], DType::I64, &Device::Cpu).unwrap(), -100);
    let (_, m) = msg(no_classes);
    assert!(
        m.contains("cross_entropy") && m.contains("[2, 0]") && m.contains("class"),
        "{m}"
    );
}

#[test]
fn dims_out_of_range_name_the_dim_and_shape() {
    let (e, m) = msg(t(&[2, 3]).softmax(2));
    assert!(
        matches!(
            e,
            Error::DimOutOfRange {
                op: "softmax",
                dim: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(m.contains("[2, 3]"), "{m}");
    let (_, m) = msg(t(&[2, 3]).sum(-3));
    assert!(m.contains("sum") && m.contains("dim -3"), "{m}");
    let (_, m) = msg(t(&[2, 3]).transpose(0, 5));
    assert!(m.contains("transpose"), "{m}");
}

#[test]
fn dtype_mismatch_and_unsupported_dtypes_are_errors() {
    let (e, _) = msg(t(&[2]).add(&Tensor::zeros([2], DType::F64, &Device::Cpu).unwrap()));
    assert!(
        matches!(
            e,
            Error::DTypeMismatch {
                op: "add",
                lhs: DType::F32,
                rhs: DType::F64
            }
        ),
        "{e:?}"
    );
    let ids = Tensor::zeros([3], DType::U32, &Device::Cpu).unwrap();
    let (e, m) = msg(ids.exp());
    assert!(
        matches!(
            e,
            Error::UnsupportedDType {
                op: "exp",
                dtype: DType::U32,
                ..
            }
        ),
        "{e:?} {m}"
    );
    let (_, m) = msg(ids.matmul(&ids));
    assert!(m.contains("matmul") && m.contains("U32"), "{m}");
    let (_, m) = msg(t(&[2]).where_cond(&t(&[2]), &t(&[2])));
    assert!(m.contains("where_cond") && m.contains("mask"), "{m}");
    let e = t(&[2]).to_vec::<f64>().unwrap_err();
    assert!(e.to_string().contains("to_vec"), "{e}");
}

#[test]
fn indices_out_of_range_name_the_index_and_the_size() {
    let ids = Tensor::from_vec(vec![0u32, 7], [2], &Device::Cpu).unwrap();
    let (e, m) = msg(t(&[5, 3]).index_select(0, &ids));
    assert!(
        matches!(
            e,
            Error::IndexOutOfRange {
                op: "index_select",
                index: 7,
                size: 5,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(m.contains("[5, 3]"), "{m}");
    let (_, m) = msg(t(&[5, 3]).embedding(&ids.reshape([1, 2]).unwrap()));
    assert!(m.contains("index 7") && m.contains("size 5"), "{m}");
    let targets = Tensor::from_vec(vec![1i64, 9], [2], &Device::Cpu).unwrap();
    let (_, m) = msg(t(&[2, 4]).cross_entropy(&targets, -100));
    assert!(
        m.contains("cross_entropy") && m.contains("index 9") && m.contains("size 4"),
        "{m}"
    );
    let (_, m) = msg(t(&[4]).narrow(0, 3, 2));
    assert!(m.contains("narrow") && m.contains("start 3 + len 2"), "{m}");
    let neg = Tensor::from_vec(vec![-1i64], [1, 1], &Device::Cpu).unwrap();
    let (_, m) = msg(t(&[2, 2]).gather(1, &neg));
    assert!(m.contains("gather") && m.contains("index -1"), "{m}");
}

#[test]
fn invalid_arguments_are_errors() {
    let (e, m) = msg(t(&[3]).dropout(1.5, &mut Rng::new(0)));
    assert!(
        matches!(e, Error::InvalidArgument { op: "dropout", .. }) && m.contains("1.5"),
        "{m}"
    );
    let (_, m) = msg(Tensor::arange_step(0.0, 1.0, 0.0, DType::F32, &Device::Cpu));
    assert!(m.contains("arange") && m.contains("step 0"), "{m}");
    let a = Tensor::from_vec(vec![4i64, 2], [2], &Device::Cpu).unwrap();
    let z = Tensor::from_vec(vec![2i64, 0], [2], &Device::Cpu).unwrap();
    let (_, m) = msg(a.div(&z));
    assert!(m.contains("division by zero"), "{m}");
    let (_, m) = msg(t(&[1, 1, 2, 2]).unfold((3, 3), 1, 0));
    assert!(m.contains("unfold") && m.contains("does not fit"), "{m}");
    let (_, m) = msg(t(&[1, 1, 4, 4]).unfold((2, 2), 0, 0));
    assert!(m.contains("stride 0"), "{m}");
}

#[test]
fn backward_misuse_is_an_error() {
    let w = t(&[3]).as_var();
    let (e, m) = msg(w.exp().and_then(|y| y.backward().map(|_| y)));
    assert!(matches!(e, Error::Backward(_)) && m.contains("[3]"), "{m}");
    let (_, m) = msg(t(&[1]).sum_all().and_then(|y| y.backward().map(|_| y)));
    assert!(m.contains("does not depend on any variable"), "{m}");
}

#[test]
fn file_errors_name_the_file() {
    let e = ptm_tensor::safetensors::load("/nonexistent/model.safetensors").unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("/nonexistent/model.safetensors"),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("ptm-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("corrupt.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}").unwrap();
    let e = ptm_tensor::safetensors::load(&bad).unwrap_err();
    assert!(
        matches!(e, Error::Safetensors { .. }) && e.to_string().contains("corrupt.safetensors"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn adamw_update_checks_shapes_and_dtypes_and_matches_adamw_step() {
    let h = ptm_cpu::optim::AdamW {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let e = t(&[2, 3])
        .adamw_update(&t(&[3, 2]), &t(&[2, 3]), &t(&[2, 3]), &h, 1)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                op: "adamw_update",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("gradient"), "{e}");
    let f64p = Tensor::zeros([2, 3], DType::F64, &Device::Cpu).unwrap();
    let e = f64p
        .adamw_update(&t(&[2, 3]), &t(&[2, 3]), &t(&[2, 3]), &h, 1)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::UnsupportedDType {
                op: "adamw_update",
                ..
            }
        ),
        "{e}"
    );
    // The CPU path is ptm-cpu's step on copies: same numbers, inputs untouched.
    let p: Vec<f32> = vec![0.5, -1.0, 2.0, 0.0, 3.0, -0.25];
    let g: Vec<f32> = vec![0.1, 0.2, -0.3, 0.4, -0.5, 0.6];
    let pt = Tensor::from_vec(p.clone(), [2, 3], &Device::Cpu).unwrap();
    let gt = Tensor::from_vec(g.clone(), [2, 3], &Device::Cpu).unwrap();
    let (p2, m2, v2) = pt
        .adamw_update(&gt, &t(&[2, 3]), &t(&[2, 3]), &h, 1)
        .unwrap();
    let (mut pw, mut mw, mut vw) = (p.clone(), vec![0.0f32; 6], vec![0.0f32; 6]);
    ptm_cpu::optim::adamw_step(&mut pw, &g, &mut mw, &mut vw, &h, 1);
    assert_eq!(p2.to_vec::<f32>().unwrap(), pw);
    assert_eq!(m2.to_vec::<f32>().unwrap(), mw);
    assert_eq!(v2.to_vec::<f32>().unwrap(), vw);
    assert_eq!(
        pt.to_vec::<f32>().unwrap(),
        p,
        "the input parameter changed"
    );
}
