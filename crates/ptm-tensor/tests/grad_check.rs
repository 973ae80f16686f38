//! Finite-difference gradient checks in f64 for every differentiable op.
//!
//! Each check builds a scalar `L = Σ w ⊙ f(inputs)` with fixed random weights `w`, takes the
//! analytic gradient from `backward`, and compares it with central differences
//! `(L(x+h) − L(x−h)) / 2h`, `h = 1e-6`, element by element:
//! `|analytic − numeric| ≤ 1e-6 + 1e-6·|numeric|`. In f64 the truncation error is ~h² and the
//! rounding error ~1e-16/h = 1e-10, so this bound is tight and still never flaky.
//!
//! Inputs cover size-1 dims, broadcasts and non-contiguous views. After all checks have run (on
//! this one thread), `every_op_kind_has_a_gradient_check` compares the op kinds that `backward`
//! actually differentiated with `OpKind::ALL`: an op added without a check here fails it.

use ptm_tensor::{
    coverage, scaled_dot_product_attention, AttentionOptions, DType, Device, OpKind, Result, Rng,
    Tensor,
};

const H: f64 = 1e-6;
const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-6;

type F = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;

struct Check {
    name: &'static str,
    inputs: Vec<Tensor>,
    f: F,
    /// Relative/absolute tolerance override for checks through lower precision.
    tol: f64,
    h: f64,
}

fn dev() -> Device {
    Device::Cpu
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(0.0, 1.0, shape, DType::F64, &mut Rng::new(seed), &dev()).unwrap()
}

/// Values in [lo, hi): for ops defined only on part of the line (log, sqrt, div).
fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor {
    Tensor::rand(lo, hi, shape, DType::F64, &mut Rng::new(seed), &dev()).unwrap()
}

fn ids(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &dev()).unwrap()
}

fn check(
    name: &'static str,
    inputs: Vec<Tensor>,
    f: impl Fn(&[Tensor]) -> Result<Tensor> + 'static,
) -> Check {
    Check {
        name,
        inputs,
        f: Box::new(f),
        tol: 1.0,
        h: H,
    }
}

/// `Σ w ⊙ f(xs)` with weights fixed by the output shape.
fn weighted_loss(f: &F, xs: &[Tensor]) -> Result<Tensor> {
    let y = f(xs)?;
    let w = Tensor::randn(0.0, 1.0, y.shape(), y.dtype(), &mut Rng::new(99), &dev())?;
    y.mul(&w)?.sum_all()
}

/// Runs one check; returns a description of each mismatch.
fn run(c: &Check) -> Vec<String> {
    let vars: Vec<Tensor> = c.inputs.iter().map(|t| t.as_var()).collect();
    let loss = match weighted_loss(&c.f, &vars) {
        Ok(l) => l,
        Err(e) => return vec![format!("{}: forward failed: {e}", c.name)],
    };
    let grads = match loss.backward() {
        Ok(g) => g,
        Err(e) => return vec![format!("{}: backward failed: {e}", c.name)],
    };
    let mut errors = vec![];
    for (i, x) in c.inputs.iter().enumerate() {
        if !x.dtype().is_float() {
            continue;
        }
        let analytic = match grads.get(&vars[i]) {
            Some(g) => g.to_f64_vec().unwrap(),
            None => vec![0.0; x.elem_count()],
        };
        let base = x.to_f64_vec().unwrap();
        for j in 0..base.len() {
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[j] += delta;
                let mut xs = c.inputs.clone();
                xs[i] = Tensor::from_vec(v, x.shape(), &dev())
                    .unwrap()
                    .to_dtype(x.dtype())
                    .unwrap();
                weighted_loss(&c.f, &xs).unwrap().to_f64_vec().unwrap()[0]
            };
            let numeric = (eval(c.h) - eval(-c.h)) / (2.0 * c.h);
            let (atol, rtol) = (ATOL * c.tol, RTOL * c.tol);
            if (analytic[j] - numeric).abs() > atol + rtol * numeric.abs() {
                errors.push(format!(
                    "{}: input {i} element {j}: analytic {} vs numeric {numeric}",
                    c.name, analytic[j]
                ));
            }
        }
    }
    errors
}

fn unary_checks() -> Vec<Check> {
    // Each unary op on a contiguous [3,1,4] input and on a transposed (non-contiguous) view.
    let mut v = vec![];
    macro_rules! unary {
        ($name:literal, $x:expr, |$t:ident| $e:expr) => {
            v.push(check($name, vec![$x], |xs| {
                let $t = &xs[0];
                $e
            }));
            v.push(check(
                concat!($name, " (transposed view)"),
                vec![$x.reshape([4, 3]).unwrap()],
                |xs| {
                    let $t = &xs[0].t()?;
                    $e
                },
            ));
        };
    }
    let any = randn(&[3, 1, 4], 1);
    let pos = uniform(&[3, 1, 4], 0.2, 2.0, 2);
    unary!("neg", any.clone(), |x| x.neg());
    unary!("abs", any.clone(), |x| x.abs());
    unary!("sign", any.clone(), |x| x.sign()?.mul(x));
    unary!("exp", any.clone(), |x| x.exp());
    unary!("log", pos.clone(), |x| x.log());
    unary!("sqrt", pos.clone(), |x| x.sqrt());
    unary!("rsqrt", pos.clone(), |x| x.rsqrt());
    unary!("powf", pos.clone(), |x| x.powf(2.5));
    unary!("tanh", any.clone(), |x| x.tanh());
    unary!("sigmoid", any.clone(), |x| x.sigmoid());
    unary!("relu", any.clone(), |x| x.relu());
    unary!("gelu (tanh)", any.clone(), |x| x.gelu());
    unary!("gelu (erf)", any.clone(), |x| x.gelu_erf());
    unary!("silu", any.clone(), |x| x.silu());
    unary!("add_scalar", any.clone(), |x| x.add_scalar(0.7));
    unary!("sub_scalar", any.clone(), |x| x.sub_scalar(0.7));
    unary!("mul_scalar", any.clone(), |x| x.mul_scalar(-1.3));
    unary!("div_scalar", any.clone(), |x| x.div_scalar(4.0));
    unary!("affine", any.clone(), |x| x.affine(2.0, -1.0));
    unary!("clamp", any.clone(), |x| x.clamp(-0.5, 0.5));
    v
}

fn binary_checks() -> Vec<Check> {
    let mut v = vec![];
    // (lhs shape, rhs shape): same shape, trailing broadcast, both-sided broadcast, scalar.
    let pairs: [(&[usize], &[usize]); 4] = [
        (&[2, 3], &[2, 3]),
        (&[2, 3, 4], &[3, 1]),
        (&[1, 4], &[3, 1]),
        (&[2, 3], &[]),
    ];
    for (k, (sa, sb)) in pairs.into_iter().enumerate() {
        let (a, b) = (randn(sa, 10 + k as u64), randn(sb, 20 + k as u64));
        let bpos = uniform(sb, 0.5, 2.0, 30 + k as u64);
        v.push(check("add", vec![a.clone(), b.clone()], |x| {
            x[0].add(&x[1])
        }));
        v.push(check("sub", vec![a.clone(), b.clone()], |x| {
            x[0].sub(&x[1])
        }));
        v.push(check("mul", vec![a.clone(), b.clone()], |x| {
            x[0].mul(&x[1])
        }));
        v.push(check("div", vec![a.clone(), bpos], |x| x[0].div(&x[1])));
        v.push(check("maximum", vec![a.clone(), b.clone()], |x| {
            x[0].maximum(&x[1])
        }));
        v.push(check("minimum", vec![a.clone(), b.clone()], |x| {
            x[0].minimum(&x[1])
        }));
    }
    // A non-contiguous operand: the transposed view of a [3, 2] variable against [2, 3].
    v.push(check(
        "mul (transposed operand)",
        vec![randn(&[3, 2], 40), randn(&[2, 3], 41)],
        |x| x[0].t()?.mul(&x[1]),
    ));
    let mask = Tensor::from_vec(vec![1u32, 0, 1, 0, 0, 1], [2, 3], &dev()).unwrap();
    let m2 = mask.clone();
    v.push(check(
        "where_cond",
        vec![randn(&[2, 3], 42), randn(&[3], 43)],
        move |x| m2.where_cond(&x[0], &x[1]),
    ));
    v.push(check("masked_fill", vec![randn(&[2, 3], 44)], move |x| {
        x[0].masked_fill(&mask, -2.0)
    }));
    v
}

fn reduce_checks() -> Vec<Check> {
    let x = randn(&[2, 3, 4], 50);
    vec![
        check("sum dims (0,2) keepdim", vec![x.clone()], |x| {
            x[0].sum_keepdim([0, 2])
        }),
        check("sum dim 1", vec![x.clone()], |x| x[0].sum(1)),
        check("sum_all", vec![x.clone()], |x| x[0].sum_all()),
        check("sum of a transposed view", vec![x.clone()], |x| {
            x[0].transpose(0, 2)?.sum(-1)
        }),
        check("mean dims (1,2)", vec![x.clone()], |x| x[0].mean([1, 2])),
        check("mean_all", vec![x.clone()], |x| x[0].mean_all()),
        check("max dim -1", vec![x.clone()], |x| x[0].max(-1)),
        check("max dims (0,1) keepdim", vec![x.clone()], |x| {
            x[0].max_keepdim([0, 1])
        }),
        check("min dim 0", vec![x.clone()], |x| x[0].min(0)),
        check("var dim -1 unbiased", vec![x.clone()], |x| x[0].var(-1, 1)),
        check("var dims (0,2) biased keepdim", vec![x.clone()], |x| {
            x[0].var_keepdim([0, 2], 0)
        }),
    ]
}

fn matmul_checks() -> Vec<Check> {
    vec![
        check(
            "matmul 2d",
            vec![randn(&[3, 4], 60), randn(&[4, 5], 61)],
            |x| x[0].matmul(&x[1]),
        ),
        check(
            "matmul batched x 2d",
            vec![randn(&[2, 3, 4], 62), randn(&[4, 5], 63)],
            |x| x[0].matmul(&x[1]),
        ),
        check(
            "matmul broadcast batch",
            vec![randn(&[2, 1, 3, 4], 64), randn(&[3, 4, 2], 65)],
            |x| x[0].matmul(&x[1]),
        ),
        check(
            "matmul transposed operands",
            vec![randn(&[4, 3], 66), randn(&[5, 4], 67)],
            |x| x[0].t()?.matmul(&x[1].t()?),
        ),
        check(
            "matmul vector x matrix",
            vec![randn(&[4], 68), randn(&[4, 3], 69)],
            |x| x[0].matmul(&x[1]),
        ),
        check(
            "matmul matrix x vector",
            vec![randn(&[3, 4], 70), randn(&[4], 71)],
            |x| x[0].matmul(&x[1]),
        ),
        check(
            "matmul with a size-1 dim",
            vec![randn(&[1, 4], 72), randn(&[4, 1], 73)],
            |x| x[0].matmul(&x[1]),
        ),
    ]
}

fn view_checks() -> Vec<Check> {
    let x = randn(&[2, 3, 4], 80);
    vec![
        check("reshape", vec![x.clone()], |x| x[0].reshape([6, 4])),
        check("reshape of a non-contiguous view", vec![x.clone()], |x| {
            x[0].transpose(0, 1)?.reshape([3, 8])
        }),
        check("flatten", vec![x.clone()], |x| x[0].flatten(1, 2)),
        check("transpose", vec![x.clone()], |x| x[0].transpose(0, 2)),
        check("permute", vec![x.clone()], |x| x[0].permute(&[2, 0, 1])),
        check("narrow (middle)", vec![x.clone()], |x| x[0].narrow(2, 1, 2)),
        check("narrow (start)", vec![x.clone()], |x| x[0].narrow(1, 0, 2)),
        check("narrow (end)", vec![x.clone()], |x| x[0].narrow(0, 1, 1)),
        check("broadcast_as", vec![randn(&[3, 1], 81)], |x| {
            x[0].broadcast_as([2, 3, 4])
        }),
        check("squeeze", vec![randn(&[3, 1, 2], 82)], |x| x[0].squeeze(1)),
        check("unsqueeze", vec![randn(&[3, 2], 83)], |x| {
            x[0].unsqueeze(-1)
        }),
        check("contiguous", vec![x.clone()], |x| {
            x[0].permute(&[1, 2, 0])?.contiguous()
        }),
        check("view chain", vec![x.clone()], |x| {
            x[0].t()?
                .narrow(1, 1, 3)?
                .unsqueeze(0)?
                .broadcast_as([2, 2, 3, 3])?
                .contiguous()
        }),
    ]
}

fn index_checks() -> Vec<Check> {
    let x = randn(&[3, 4], 90);
    let sel = ids(&[2, 0, 2, 1], &[4]);
    let sel2 = sel.clone();
    let gidx = ids(&[0, 2, 1, 1, 3, 0], &[3, 2]);
    let tok = ids(&[1, 0, 2, 2, 1, 1], &[2, 3]);
    vec![
        check(
            "cat dim 0",
            vec![randn(&[2, 3], 91), randn(&[1, 3], 92)],
            |x| Tensor::cat(&[x[0].clone(), x[1].clone()], 0),
        ),
        check(
            "cat dim 1 of views",
            vec![randn(&[2, 3], 93), randn(&[4, 2], 94)],
            |x| Tensor::cat(&[x[0].clone(), x[1].t()?], -1),
        ),
        check("stack", vec![randn(&[2, 3], 95), randn(&[2, 3], 96)], |x| {
            Tensor::stack(&[x[0].clone(), x[1].clone()], 1)
        }),
        check("split", vec![x.clone()], |x| {
            let p = x[0].split(&[1, 3], 1)?;
            p[0].sum_all()?.mul(&p[1].sum(1)?)
        }),
        check("chunk", vec![x.clone()], |x| {
            let p = x[0].chunk(2, 0)?;
            p[0].sum(0)?.mul(&p[1].sum(0)?)
        }),
        check(
            "index_select dim 0 with repeats",
            vec![x.clone()],
            move |x| x[0].index_select(0, &sel),
        ),
        check("index_select dim 1 of a view", vec![x.clone()], move |x| {
            x[0].t()?.index_select(0, &sel2)
        }),
        check("gather dim 1", vec![x.clone()], move |x| {
            x[0].gather(1, &gidx)
        }),
        check("embedding", vec![randn(&[3, 5], 97)], move |x| {
            x[0].embedding(&tok)
        }),
    ]
}

fn nn_checks() -> Vec<Check> {
    let logits_t = ids(&[2, -100, 0, 1, 4], &[5]);
    let lce_targets = ids(
        &(0..70)
            .map(|i| if i % 9 == 4 { -100 } else { (i * 7 % 5) as i64 })
            .collect::<Vec<_>>(),
        &[70],
    );
    let mask = Tensor::from_vec(vec![1u32, 1, 1, 0, 1, 0, 1, 1], [2, 4], &dev()).unwrap();
    let mut v = vec![
        check("softmax last dim", vec![randn(&[2, 3, 5], 100)], |x| {
            x[0].softmax(-1)
        }),
        check("softmax middle dim", vec![randn(&[2, 3, 5], 101)], |x| {
            x[0].softmax(1)
        }),
        check("log_softmax last dim", vec![randn(&[4, 6], 102)], |x| {
            x[0].log_softmax(-1)
        }),
        check("log_softmax dim 0", vec![randn(&[4, 6], 103)], |x| {
            x[0].log_softmax(0)
        }),
        check(
            "layer_norm with weight and bias",
            vec![randn(&[2, 3, 6], 104), randn(&[6], 105), randn(&[6], 106)],
            |x| x[0].layer_norm(Some(&x[1]), Some(&x[2]), 1e-5),
        ),
        check("layer_norm bare", vec![randn(&[4, 5], 107)], |x| {
            x[0].layer_norm(None, None, 1e-5)
        }),
        check(
            "layer_norm of a view",
            vec![randn(&[6, 4], 108), randn(&[6], 109)],
            |x| x[0].t()?.layer_norm(Some(&x[1]), None, 1e-5),
        ),
        check(
            "cross_entropy with ignore_index",
            vec![randn(&[5, 7], 110)],
            move |x| x[0].cross_entropy(&logits_t, -100),
        ),
        check(
            "linear_cross_entropy over two row blocks, with ignored rows",
            vec![randn(&[70, 3], 150), randn(&[5, 3], 151)],
            move |x| x[0].linear_cross_entropy(&x[1], &lce_targets, -100),
        ),
        check("dropout (seeded)", vec![randn(&[4, 5], 111)], |x| {
            x[0].dropout(0.3, &mut Rng::new(5))
        }),
        check(
            "conv2d stride 2 pad 1 with bias",
            vec![
                randn(&[2, 3, 5, 4], 112),
                randn(&[4, 3, 3, 2], 113),
                randn(&[4], 114),
            ],
            |x| x[0].conv2d(&x[1], Some(&x[2]), 2, 1),
        ),
        check(
            "conv2d as patch embedding",
            vec![randn(&[1, 2, 4, 4], 115), randn(&[3, 2, 2, 2], 116)],
            |x| x[0].conv2d(&x[1], None, 2, 0),
        ),
        check("unfold", vec![randn(&[1, 2, 3, 3], 117)], |x| {
            x[0].unfold((2, 2), 1, 1)
        }),
    ];
    let (q, k, val) = (
        randn(&[2, 2, 3, 4], 120),
        randn(&[2, 2, 4, 4], 121),
        randn(&[2, 2, 4, 4], 122),
    );
    v.push(check(
        "attention plain",
        vec![q.clone(), k.clone(), val.clone()],
        |x| scaled_dot_product_attention(&x[0], &x[1], &x[2], AttentionOptions::default()),
    ));
    v.push(check(
        "attention causal + padding",
        vec![q.clone(), k.clone(), val.clone()],
        move |x| {
            let opts = AttentionOptions {
                causal: true,
                key_padding_mask: Some(&mask),
                ..Default::default()
            };
            scaled_dot_product_attention(&x[0], &x[1], &x[2], opts)
        },
    ));
    v.push(check(
        "attention with prefix keys/values",
        vec![
            q,
            k,
            val,
            randn(&[1, 2, 2, 4], 123),
            randn(&[1, 2, 2, 4], 124),
        ],
        |x| {
            let opts = AttentionOptions {
                causal: true,
                prefix: Some((&x[3], &x[4])),
                scale: Some(0.3),
                ..Default::default()
            };
            scaled_dot_product_attention(&x[0], &x[1], &x[2], opts)
        },
    ));
    // Casts: through f32 the function is linear, so central differences with a larger step are
    // exact up to f32 rounding (~6e-8 relative per element / 1e-2 step).
    let mut cast = check("cast f64 -> f32 -> f64", vec![randn(&[3, 4], 125)], |x| {
        x[0].to_dtype(DType::F32)?.to_dtype(DType::F64)
    });
    cast.h = 1e-2;
    cast.tol = 100.0;
    v.push(cast);
    v
}

#[test]
fn every_op_kind_has_a_gradient_check() {
    coverage::reset();
    let checks: Vec<Check> = [
        unary_checks(),
        binary_checks(),
        reduce_checks(),
        matmul_checks(),
        view_checks(),
        index_checks(),
        nn_checks(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let failures: Vec<String> = checks.iter().flat_map(run).collect();
    assert!(
        failures.is_empty(),
        "{} gradient mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let seen = coverage::seen();
    let missing: Vec<OpKind> = OpKind::ALL
        .iter()
        .copied()
        .filter(|k| !seen.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "ops with no finite-difference gradient check: {missing:?}"
    );
    println!(
        "{} gradient checks passed, covering all {} op kinds",
        checks.len(),
        OpKind::ALL.len()
    );
}

#[test]
fn gradients_accumulate_across_backward_calls() {
    let w = randn(&[3], 1).as_var();
    let mut store = ptm_tensor::GradStore::new();
    w.mul(&w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward_into(&mut store)
        .unwrap();
    w.mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward_into(&mut store)
        .unwrap();
    let g = store.get(&w).unwrap().to_vec::<f64>().unwrap();
    for (gi, wi) in g.iter().zip(w.to_vec::<f64>().unwrap()) {
        assert!((gi - (2.0 * wi + 3.0)).abs() < 1e-12);
    }
}

#[test]
fn detach_and_no_grad_stop_the_graph() {
    let w = randn(&[3], 2).as_var();
    let through_detach = w.mul(&w.detach()).unwrap().sum_all().unwrap();
    let g = through_detach
        .backward()
        .unwrap()
        .get(&w)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    assert_eq!(g, w.to_vec::<f64>().unwrap(), "d/dw (w · const w) = w");
    let y = {
        let _guard = ptm_tensor::no_grad();
        w.exp().unwrap()
    };
    assert!(!y.tracks_grad());
    assert!(ptm_tensor::is_grad_enabled());
}

#[test]
fn a_reused_tensor_sums_its_gradients() {
    // y = x·x + x through a shared subexpression: dy/dx = 2x + 1.
    let x = randn(&[4], 3).as_var();
    let y = x.mul(&x).unwrap().add(&x).unwrap().sum_all().unwrap();
    let g = y
        .backward()
        .unwrap()
        .get(&x)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    for (gi, xi) in g.iter().zip(x.to_vec::<f64>().unwrap()) {
        assert!((gi - (2.0 * xi + 1.0)).abs() < 1e-12);
    }
}

#[test]
fn half_precision_gradients_agree_with_f64() {
    // The same small network in f32, f16, bf16 and f64: gradients agree to the storage precision
    // (f32 ~1e-6; f16 ~1e-3 and bf16 ~1e-2 relative, their 10/7-bit mantissas).
    let x = randn(&[4, 6], 7);
    let w = randn(&[6, 3], 8);
    let grad = |dtype: DType| -> Vec<f64> {
        let wv = w.to_dtype(dtype).unwrap().as_var();
        let y = x
            .to_dtype(dtype)
            .unwrap()
            .matmul(&wv)
            .unwrap()
            .gelu()
            .unwrap()
            .layer_norm(None, None, 1e-5)
            .unwrap();
        let loss = y.softmax(-1).unwrap().mul(&y).unwrap().sum_all().unwrap();
        loss.backward()
            .unwrap()
            .get(&wv)
            .unwrap()
            .to_f64_vec()
            .unwrap()
    };
    let reference = grad(DType::F64);
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (dtype, tol) in [(DType::F32, 1e-5), (DType::F16, 2e-2), (DType::BF16, 1e-1)] {
        let g = grad(dtype);
        let err = g
            .iter()
            .zip(&reference)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        assert!(
            err < tol,
            "{dtype:?}: max error {err} relative to the largest gradient, tolerance {tol}"
        );
    }
}
