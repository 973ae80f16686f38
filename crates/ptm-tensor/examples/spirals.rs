//! Trains a small MLP with autograd and plain SGD on a generated two-spirals set.
//!
//! Run: `cargo run --release -p ptm-tensor --example spirals`
//!
//! Two interleaved spirals (1.75 turns each, 500 points per class, a little noise) cannot be
//! separated by a line; an MLP of 2 → 64 → 64 → 2 with tanh units must bend its boundary around
//! both arms. Full-batch SGD with momentum-free updates `w ← w − lr·∇w`.

use ptm_tensor::{no_grad, DType, Device, Result, Rng, Tensor};

const POINTS_PER_CLASS: usize = 500;
const TURNS: f64 = 1.75;
const HIDDEN: usize = 64;
const STEPS: usize = 3000;
const LEARNING_RATE: f64 = 0.5;

/// Points `(x, y)` and labels 0/1 of two spirals, the second the first rotated by π.
fn two_spirals(rng: &mut Rng) -> (Vec<f32>, Vec<u32>) {
    let (mut xy, mut labels) = (vec![], vec![]);
    for class in 0..2u32 {
        for i in 0..POINTS_PER_CLASS {
            let t = i as f64 / POINTS_PER_CLASS as f64;
            let angle = t * TURNS * std::f64::consts::TAU + class as f64 * std::f64::consts::PI;
            let radius = 0.1 + 0.9 * t;
            xy.push((radius * angle.cos() + 0.02 * rng.normal()) as f32);
            xy.push((radius * angle.sin() + 0.02 * rng.normal()) as f32);
            labels.push(class);
        }
    }
    (xy, labels)
}

/// A linear layer's parameters, initialised as PyTorch's `nn.Linear` (uniform ±1/√fan_in).
fn linear(fan_in: usize, fan_out: usize, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let w = Tensor::rand(
        -bound,
        bound,
        [fan_in, fan_out],
        DType::F32,
        rng,
        &Device::Cpu,
    )?
    .as_var();
    let b = Tensor::rand(-bound, bound, [fan_out], DType::F32, rng, &Device::Cpu)?.as_var();
    Ok((w, b))
}

fn main() -> Result<()> {
    let mut rng = Rng::new(42);
    let (xy, labels) = two_spirals(&mut rng);
    let n = labels.len();
    let x = Tensor::from_vec(xy, [n, 2], &Device::Cpu)?;
    let y = Tensor::from_vec(labels.clone(), [n], &Device::Cpu)?;
    let layers = [
        linear(2, HIDDEN, &mut rng)?,
        linear(HIDDEN, HIDDEN, &mut rng)?,
        linear(HIDDEN, 2, &mut rng)?,
    ];
    let mut params: Vec<Tensor> = layers
        .iter()
        .flat_map(|(w, b)| [w.clone(), b.clone()])
        .collect();

    let forward = |params: &[Tensor]| -> Result<Tensor> {
        let h = x.matmul(&params[0])?.add(&params[1])?.tanh()?;
        let h = h.matmul(&params[2])?.add(&params[3])?.tanh()?;
        h.matmul(&params[4])?.add(&params[5])
    };
    let accuracy = |logits: &Tensor| -> Result<f64> {
        let pred = logits.argmax(-1)?.to_vec::<i64>()?;
        Ok(pred
            .iter()
            .zip(&labels)
            .filter(|(p, l)| **p == **l as i64)
            .count() as f64
            / n as f64)
    };

    println!("two spirals: {n} points, MLP 2-{HIDDEN}-{HIDDEN}-2, SGD lr {LEARNING_RATE}, {STEPS} full-batch steps");
    let started = std::time::Instant::now();
    for step in 0..=STEPS {
        let logits = forward(&params)?;
        let loss = logits.cross_entropy(&y, -100)?;
        if step % 250 == 0 {
            println!(
                "step {step:>5}  loss {:.4}  train accuracy {:.1}%",
                loss.to_scalar::<f32>()?,
                100.0 * accuracy(&logits)?
            );
        }
        if step == STEPS {
            break;
        }
        let grads = loss.backward()?;
        let _guard = no_grad();
        for p in params.iter_mut() {
            let g = grads.get(p).expect("every parameter is used by the loss");
            *p = p.sub(&g.mul_scalar(LEARNING_RATE)?)?.as_var();
        }
    }
    let final_acc = accuracy(&forward(&params)?)?;
    println!(
        "final train accuracy {:.1}% in {:.1} s",
        100.0 * final_acc,
        started.elapsed().as_secs_f64()
    );
    if final_acc <= 0.95 {
        eprintln!("did not reach 95% training accuracy");
        std::process::exit(1);
    }
    Ok(())
}
