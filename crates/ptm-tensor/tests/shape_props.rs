//! Property tests for the shape algebra: broadcasting, view composition, cat/split round trips.
//! Values are checked against index arithmetic done here, independently of the layout code.

use proptest::prelude::*;
use ptm_tensor::{broadcast_shape, DType, Device, Shape, Tensor};

fn arange(dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    Tensor::arange(0.0, n as f64, DType::F64, &Device::Cpu)
        .unwrap()
        .reshape(dims.to_vec())
        .unwrap()
}

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Row-major multi-indices of a shape.
fn indices(dims: &[usize]) -> Vec<Vec<usize>> {
    let n: usize = dims.iter().product();
    let st = strides(dims);
    (0..n)
        .map(|f| dims.iter().zip(&st).map(|(&d, &s)| f / s % d).collect())
        .collect()
}

fn dims_strategy(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 1..=max_rank)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn broadcast_follows_numpy(a in prop::collection::vec(1usize..4, 0..4), b in prop::collection::vec(1usize..4, 0..4)) {
        // Reference: pad with leading 1s, then each pair must be equal or contain a 1.
        let r = a.len().max(b.len());
        let pad = |v: &Vec<usize>| std::iter::repeat_n(1, r - v.len()).chain(v.iter().copied()).collect::<Vec<_>>();
        let (pa, pb) = (pad(&a), pad(&b));
        let ok = pa.iter().zip(&pb).all(|(x, y)| x == y || *x == 1 || *y == 1);
        let got = broadcast_shape("test", &Shape::from(a.clone()), &Shape::from(b.clone()));
        let got_rev = broadcast_shape("test", &Shape::from(b.clone()), &Shape::from(a.clone()));
        prop_assert_eq!(got.is_ok(), ok);
        prop_assert_eq!(got_rev.is_ok(), ok);
        if ok {
            let want: Vec<usize> = pa.iter().zip(&pb).map(|(x, y)| *x.max(y)).collect();
            prop_assert_eq!(got.unwrap().dims().to_vec(), want.clone());
            prop_assert_eq!(got_rev.unwrap().dims().to_vec(), want.clone());
            // And a real add agrees on the shape and on the values: a[i] + b[i] with broadcast indexing.
            let (ta, tb) = (arange(&a), arange(&b).mul_scalar(100.0).unwrap());
            let sum = ta.add(&tb).unwrap();
            prop_assert_eq!(sum.dims(), &want[..]);
            let (va, vb, vs) = (ta.to_f64_vec().unwrap(), tb.to_f64_vec().unwrap(), sum.to_f64_vec().unwrap());
            for (f, idx) in indices(&want).iter().enumerate() {
                let flat = |dims: &Vec<usize>| -> usize {
                    let off = r - dims.len();
                    dims.iter().zip(strides(dims)).enumerate().map(|(i, (&d, s))| if d == 1 { 0 } else { idx[off + i] * s }).sum()
                };
                prop_assert_eq!(vs[f], va[flat(&a)] + vb[flat(&b)]);
            }
        }
    }

    #[test]
    fn permute_then_inverse_is_identity_and_values_follow_the_permutation(dims in dims_strategy(4), seed in any::<u64>()) {
        let rank = dims.len();
        let mut perm: Vec<usize> = (0..rank).collect();
        // Fisher-Yates with the proptest seed.
        let mut s = seed;
        for i in (1..rank).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let x = arange(&dims);
        let p = x.permute(&perm).unwrap();
        prop_assert!(p.shares_storage_with(&x));
        let pv = p.to_f64_vec().unwrap();
        let st = strides(&dims);
        for (f, idx) in indices(p.dims()).iter().enumerate() {
            // p[idx] = x[j] with j[perm[i]] = idx[i].
            let off: usize = (0..rank).map(|i| idx[i] * st[perm[i]]).sum();
            prop_assert_eq!(pv[f], off as f64);
        }
        let mut inv = vec![0; rank];
        for (i, &q) in perm.iter().enumerate() { inv[q] = i; }
        let back = p.permute(&inv).unwrap();
        prop_assert_eq!(back.dims(), x.dims());
        prop_assert_eq!(back.to_f64_vec().unwrap(), x.to_f64_vec().unwrap());
    }

    #[test]
    fn narrow_of_narrow_is_one_narrow(dims in dims_strategy(3), d in 0usize..3, a in 0usize..4, b in 0usize..4) {
        let d = d % dims.len();
        let size = dims[d];
        let (s1, l1) = (a % size, 1 + b % (size - a % size));
        let (s2, l2) = (b % l1, 1 + a % (l1 - b % l1));
        let x = arange(&dims);
        let twice = x.narrow(d, s1, l1).unwrap().narrow(d, s2, l2).unwrap();
        let once = x.narrow(d, s1 + s2, l2).unwrap();
        prop_assert!(twice.shares_storage_with(&x));
        prop_assert_eq!(twice.dims(), once.dims());
        prop_assert_eq!(twice.to_f64_vec().unwrap(), once.to_f64_vec().unwrap());
    }

    #[test]
    fn reshape_and_transpose_compose(dims in dims_strategy(4), d0 in 0usize..4, d1 in 0usize..4) {
        let (d0, d1) = (d0 % dims.len(), d1 % dims.len());
        let x = arange(&dims);
        let t = x.transpose(d0, d1).unwrap();
        prop_assert_eq!(t.transpose(d0, d1).unwrap().to_f64_vec().unwrap(), x.to_f64_vec().unwrap());
        // Reshaping a non-contiguous view flattens in its logical order.
        let flat = t.flatten_all().unwrap();
        prop_assert_eq!(flat.to_f64_vec().unwrap(), t.to_f64_vec().unwrap());
        let round = flat.reshape(t.dims().to_vec()).unwrap();
        prop_assert_eq!(round.to_f64_vec().unwrap(), t.to_f64_vec().unwrap());
        // unsqueeze/squeeze are inverse views.
        let u = t.unsqueeze(d0).unwrap();
        prop_assert!(u.shares_storage_with(&x));
        prop_assert_eq!(u.squeeze(d0).unwrap().to_f64_vec().unwrap(), t.to_f64_vec().unwrap());
    }

    #[test]
    fn cat_of_split_is_the_original(dims in dims_strategy(3), d in 0usize..3, cut in any::<u64>()) {
        // Split a non-contiguous view at a random point along a random dim.
        let d = d % dims.len();
        let x = arange(&dims).transpose(0, dims.len() - 1).unwrap();
        let size = x.dims()[d];
        let first = (cut as usize) % (size + 1);
        let sizes: Vec<usize> = [first, size - first].into_iter().filter(|&n| n > 0).collect();
        let pieces = x.split(&sizes, d).unwrap();
        let joined = Tensor::cat(&pieces, d).unwrap();
        prop_assert_eq!(joined.dims(), x.dims());
        prop_assert_eq!(joined.to_f64_vec().unwrap(), x.to_f64_vec().unwrap());
        let chunks = x.chunk(2, d).unwrap();
        prop_assert_eq!(Tensor::cat(&chunks, d).unwrap().to_f64_vec().unwrap(), x.to_f64_vec().unwrap());
        let stacked = Tensor::stack(&[x.clone(), x.clone()], 0).unwrap();
        prop_assert_eq!(stacked.narrow(0, 1, 1).unwrap().squeeze(0).unwrap().to_f64_vec().unwrap(), x.to_f64_vec().unwrap());
    }
}
