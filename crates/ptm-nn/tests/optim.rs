//! Optimizers against their update rules written out here, and exact state round trips.

use ptm_nn::optim::{AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
use ptm_nn::Param;
use ptm_tensor::{Device, GradStore, Tensor};

fn param(v: &[f32]) -> Param {
    Param::new(
        Tensor::from_vec(v.to_vec(), [v.len()], &Device::Cpu).unwrap(),
        true,
    )
}

fn grads(p: &Param, g: &[f32]) -> GradStore {
    let mut s = GradStore::new();
    s.insert(
        &p.tensor(),
        Tensor::from_vec(g.to_vec(), [g.len()], &Device::Cpu).unwrap(),
    );
    s
}

#[test]
fn sgd_with_momentum_and_weight_decay_follows_torch() {
    let p = param(&[1.0, -2.0]);
    let cfg = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.01,
    };
    let mut opt = Sgd::new(vec![("p".into(), p.clone())], cfg).unwrap();
    let (mut w, mut buf) = ([1.0f64, -2.0], [0.0f64; 2]);
    for (step, g) in [[0.5, 0.25], [-0.1, 0.3], [0.2, -0.4]].iter().enumerate() {
        opt.step(&grads(&p, &[g[0] as f32, g[1] as f32])).unwrap();
        for i in 0..2 {
            let d = g[i] + 0.01 * w[i];
            buf[i] = if step == 0 { d } else { 0.9 * buf[i] + d };
            w[i] -= 0.1 * buf[i];
        }
    }
    let got = p.tensor().to_vec::<f32>().unwrap();
    for i in 0..2 {
        assert!((got[i] as f64 - w[i]).abs() < 1e-6, "{got:?} vs {w:?}");
    }
}

#[test]
fn adamw_follows_decoupled_weight_decay() {
    let p = param(&[0.3, -0.7, 1.5]);
    let cfg = AdamWConfig {
        lr: 0.05,
        weight_decay: 0.1,
        ..Default::default()
    };
    let mut opt = AdamW::new(vec![("p".into(), p.clone())], cfg, |_| true).unwrap();
    let (mut w, mut m, mut v) = ([0.3f64, -0.7, 1.5], [0.0f64; 3], [0.0f64; 3]);
    let gs = [[0.1, -0.2, 0.3], [0.05, 0.4, -0.1], [-0.3, 0.1, 0.2]];
    for (t, g) in gs.iter().enumerate() {
        opt.step(&grads(&p, &g.map(|x| x as f32))).unwrap();
        let t = (t + 1) as i32;
        for i in 0..3 {
            w[i] *= 1.0 - 0.05 * 0.1;
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
            let mh = m[i] / (1.0 - 0.9f64.powi(t));
            let vh = v[i] / (1.0 - 0.999f64.powi(t));
            w[i] -= 0.05 * mh / (vh.sqrt() + 1e-8);
        }
    }
    let got = p.tensor().to_vec::<f32>().unwrap();
    for i in 0..3 {
        assert!(
            (got[i] as f64 - w[i]).abs() < 1e-6 * (1.0 + w[i].abs()),
            "{got:?} vs {w:?}"
        );
    }
}

#[test]
fn adamw_state_restores_exactly() {
    let cfg = AdamWConfig {
        lr: 0.01,
        ..Default::default()
    };
    let (a, b) = (param(&[1.0, 2.0]), param(&[1.0, 2.0]));
    let mut oa = AdamW::new(vec![("w".into(), a.clone())], cfg, |_| true).unwrap();
    oa.step(&grads(&a, &[0.3, -0.1])).unwrap();
    // A second optimizer picks up from the first's state and parameters.
    b.set(a.tensor().detach()).unwrap();
    let mut ob = AdamW::new(vec![("w".into(), b.clone())], cfg, |_| true).unwrap();
    ob.load_state(&oa.state().unwrap()).unwrap();
    oa.step(&grads(&a, &[0.2, 0.5])).unwrap();
    ob.step(&grads(&b, &[0.2, 0.5])).unwrap();
    assert_eq!(
        a.tensor().to_vec::<f32>().unwrap(),
        b.tensor().to_vec::<f32>().unwrap()
    );
    let err = ob.load_state(&Default::default()).unwrap_err().to_string();
    assert!(err.contains("w.exp_avg"), "{err}");
}

#[test]
fn bad_hyperparameters_are_named() {
    let cfg = AdamWConfig {
        lr: -1.0,
        ..Default::default()
    };
    let err = AdamW::new(vec![], cfg, |_| true).err().unwrap().to_string();
    assert!(err.contains("lr") && err.contains("-1"), "{err}");
    let err = Sgd::new(
        vec![],
        SgdConfig {
            lr: f64::NAN,
            ..Default::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("lr"), "{err}");
}

fn address_of(t: &Tensor) -> usize {
    t.values::<f32>().unwrap().as_ptr() as usize
}

/// The address of a parameter's buffer, to see whether a step reused it.
fn address(p: &Param) -> usize {
    address_of(&p.tensor())
}

#[test]
fn a_step_updates_in_place_only_what_nobody_else_sees() {
    // Two identical parameters stepped by identical optimizers. The first one's old value is held
    // by nobody, so its buffer is reused; the second one's old value is still held by a handle
    // (as an autograd graph would hold it), so the step must copy and leave that handle alone.
    let init = [0.3f32, -0.7, 1.5, 2.0];
    let g = [0.1f32, -0.2, 0.3, 0.0];
    let (free, held) = (param(&init), param(&init));
    let cfg = AdamWConfig {
        lr: 0.05,
        ..Default::default()
    };
    let mut opt_free = AdamW::new(vec![("p".into(), free.clone())], cfg, |_| true).unwrap();
    let mut opt_held = AdamW::new(vec![("p".into(), held.clone())], cfg, |_| true).unwrap();
    for step in 0..3 {
        let before = address(&free);
        opt_free.step(&grads(&free, &g)).unwrap();
        assert_eq!(
            address(&free),
            before,
            "step {step} copied a buffer nobody else holds"
        );

        let old = held.tensor();
        let old_values = old.to_vec::<f32>().unwrap();
        opt_held.step(&grads(&held, &g)).unwrap();
        assert_eq!(
            old.to_vec::<f32>().unwrap(),
            old_values,
            "a held value changed"
        );
        assert_ne!(
            address(&held),
            address_of(&old),
            "the held buffer was written"
        );

        // Bit for bit the same update either way.
        assert_eq!(
            free.tensor().to_vec::<f32>().unwrap(),
            held.tensor().to_vec::<f32>().unwrap()
        );
    }
    assert_ne!(free.tensor().to_vec::<f32>().unwrap(), init.to_vec());

    // SGD takes the same path.
    let p = param(&init);
    let mut sgd = Sgd::new(vec![("p".into(), p.clone())], SgdConfig::default()).unwrap();
    let before = address(&p);
    sgd.step(&grads(&p, &g)).unwrap();
    assert_eq!(address(&p), before);
}
