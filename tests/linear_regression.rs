//! End to end through the facade: gradient descent on least squares recovers the coefficients
//! that the normal equations give (solved here in closed form, independently of ptm).

use ptm::ptm_tensor::{no_grad, DType, Device, Rng, Tensor};

#[test]
fn gradient_descent_reaches_the_least_squares_solution() {
    let n = 200;
    let mut rng = Rng::new(11);
    let xs: Vec<f64> = (0..n).map(|_| rng.uniform() * 4.0 - 2.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|x| 3.0 * x - 2.0 + 0.3 * rng.normal())
        .collect();

    // Closed form for y ≈ a·x + b.
    let (mx, my) = (
        xs.iter().sum::<f64>() / n as f64,
        ys.iter().sum::<f64>() / n as f64,
    );
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let (a_star, b_star) = (sxy / sxx, my - sxy / sxx * mx);

    let x = Tensor::from_vec(xs, [n, 1], &Device::Cpu).unwrap();
    let y = Tensor::from_vec(ys, [n, 1], &Device::Cpu).unwrap();
    let mut a = Tensor::zeros([1, 1], DType::F64, &Device::Cpu)
        .unwrap()
        .as_var();
    let mut b = Tensor::zeros([1], DType::F64, &Device::Cpu)
        .unwrap()
        .as_var();
    for _ in 0..500 {
        let err = x.matmul(&a).unwrap().add(&b).unwrap().sub(&y).unwrap();
        let loss = err.mul(&err).unwrap().mean_all().unwrap();
        let g = loss.backward().unwrap();
        let _guard = no_grad();
        a = a
            .sub(&g.get(&a).unwrap().mul_scalar(0.1).unwrap())
            .unwrap()
            .as_var();
        b = b
            .sub(&g.get(&b).unwrap().mul_scalar(0.1).unwrap())
            .unwrap()
            .as_var();
    }
    let (a, b) = (a.to_f64_vec().unwrap()[0], b.to_f64_vec().unwrap()[0]);
    assert!(
        (a - a_star).abs() < 1e-9 && (b - b_star).abs() < 1e-9,
        "got ({a}, {b}), least squares ({a_star}, {b_star})"
    );
}
