//! Prefill attention on the packed kernel against softmax(Q Kᵀ + mask) V in f64, for
//! grouped heads, sliding windows, cached keys before the block, head sizes that are no
//! multiple of the 32-wide panels, and bidirectional attention; and the vectorized `exp`
//! against f64, and the gated SiLU built on it; both kernel calls give the same bits.

use candle_core::{DType, Device, Tensor};
use llmdrop_kernels::attention::{prefill_attention, prefill_attention_with, Visibility};
use llmdrop_kernels::gemm::Shape;
use llmdrop_kernels::vexp::{exp_all, exp_shifted, silu_mul_slices, softmax_in_place};
use llmdrop_kernels::Kernel;
use rand::{Rng, SeedableRng};

fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

struct Case {
    b: usize,
    heads: usize,
    kv_heads: usize,
    t: usize,
    total: usize,
    d: usize,
    vis: Visibility,
}

/// softmax over visible keys (key j at position j, query i at offset + i), in f64.
fn reference(c: &Case, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f64> {
    let (groups, d) = (c.heads / c.kv_heads, c.d);
    let mut out = vec![0f64; c.b * c.t * c.heads * d];
    for bi in 0..c.b {
        for h in 0..c.heads {
            let kv = h / groups;
            for i in 0..c.t {
                let pos = c.vis.offset + i;
                let seen: Vec<usize> = (0..c.total)
                    .filter(|&j| {
                        !c.vis.causal || (j <= pos && c.vis.window.is_none_or(|w| pos - j < w))
                    })
                    .collect();
                let qi = &q[((bi * c.heads + h) * c.t + i) * d..][..d];
                let row = |x: &[f32], j: usize| {
                    x[((bi * c.kv_heads + kv) * c.total + j) * d..][..d].to_vec()
                };
                let s: Vec<f64> = seen
                    .iter()
                    .map(|&j| {
                        let kj = row(k, j);
                        (0..d).map(|e| f64::from(qi[e]) * f64::from(kj[e])).sum()
                    })
                    .collect();
                let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - max).exp()).sum();
                let o = &mut out[((bi * c.t + i) * c.heads + h) * d..][..d];
                for (&j, sj) in seen.iter().zip(&s) {
                    let p = (sj - max).exp() / z;
                    for (e, vj) in row(v, j).iter().enumerate() {
                        o[e] += p * f64::from(*vj);
                    }
                }
            }
        }
    }
    out
}

fn check(c: &Case, seed: u64) {
    let dev = Device::Cpu;
    let q = random(c.b * c.heads * c.t * c.d, seed, 1.0);
    let k = random(c.b * c.kv_heads * c.total * c.d, seed + 1, 1.0);
    let v = random(c.b * c.kv_heads * c.total * c.d, seed + 2, 1.0);
    let want = reference(c, &q, &k, &v);
    let qt = Tensor::from_vec(q, (c.b, c.heads, c.t, c.d), &dev).unwrap();
    let kt = Tensor::from_vec(k, (c.b, c.kv_heads, c.total, c.d), &dev).unwrap();
    let vt = Tensor::from_vec(v, (c.b, c.kv_heads, c.total, c.d), &dev).unwrap();
    for kernel in [Kernel::Auto, Kernel::Portable] {
        let y = prefill_attention(&qt, &kt, &vt, c.vis, kernel).unwrap();
        assert_eq!(y.dims(), &[c.b, c.t, c.heads * c.d]);
        let got: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0f64, f64::max);
        // outputs are convex combinations of values in [-1, 1]
        assert!(
            worst < 2e-6,
            "{kernel:?} t {} total {} d {}: max |diff| {worst}",
            c.t,
            c.total,
            c.d
        );
    }
}

fn causal(offset: usize, window: Option<usize>) -> Visibility {
    Visibility {
        offset,
        causal: true,
        window,
    }
}

#[test]
fn causal_grouped_heads_match_f64() {
    // 3 query heads per kv head; rows across tiles (12) and tasks (48)
    for t in [1, 5, 12, 13, 49, 100] {
        let c = Case {
            b: 2,
            heads: 6,
            kv_heads: 2,
            t,
            total: t,
            d: 64,
            vis: causal(0, None),
        };
        check(&c, t as u64);
    }
}

#[test]
fn cached_keys_before_the_block() {
    // keys 0..total, queries at positions 40..total: a chunk after cached tokens
    let c = Case {
        b: 1,
        heads: 4,
        kv_heads: 4,
        t: 30,
        total: 70,
        d: 64,
        vis: causal(40, None),
    };
    check(&c, 11);
}

#[test]
fn sliding_window() {
    for (t, w) in [(100, 16), (70, 33), (50, 1)] {
        let c = Case {
            b: 1,
            heads: 2,
            kv_heads: 1,
            t,
            total: t,
            d: 32,
            vis: causal(0, Some(w)),
        };
        check(&c, w as u64);
    }
    let c = Case {
        b: 1,
        heads: 2,
        kv_heads: 2,
        t: 20,
        total: 90,
        d: 32,
        vis: causal(70, Some(25)),
    };
    check(&c, 99);
}

#[test]
fn head_size_not_a_multiple_of_the_panel() {
    for d in [8, 40, 80] {
        let c = Case {
            b: 1,
            heads: 2,
            kv_heads: 1,
            t: 37,
            total: 37,
            d,
            vis: causal(0, None),
        };
        check(&c, d as u64);
    }
}

#[test]
fn bidirectional() {
    let vis = Visibility {
        offset: 0,
        causal: false,
        window: None,
    };
    let c = Case {
        b: 1,
        heads: 3,
        kv_heads: 1,
        t: 25,
        total: 25,
        d: 64,
        vis,
    };
    check(&c, 5);
}

#[test]
fn queries_that_see_no_key_get_zeros() {
    // no keys at all: the output is written unzeroed by the tiles, so each must write its
    // rows even when there is nothing to attend to (poisoned memory would show through)
    let dev = Device::Cpu;
    let vis = Visibility {
        offset: 0,
        causal: false,
        window: None,
    };
    for (t, d) in [(1, 64), (13, 64), (30, 40)] {
        let q = Tensor::from_vec(random(3 * t * d, 1, 1.0), (1, 3, t, d), &dev).unwrap();
        let none = Tensor::zeros((1, 1, 0, d), DType::F32, &dev).unwrap();
        for kernel in [Kernel::Auto, Kernel::Portable] {
            for call in [Shape::Rows12, Shape::Rows6] {
                let y = prefill_attention_with(&q, &none, &none, vis, kernel, call).unwrap();
                assert_eq!(y.dims(), &[1, t, 3 * d]);
                let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
                assert!(
                    y.iter().all(|&x| x == 0.0),
                    "{kernel:?} {call:?} t {t} d {d}"
                );
            }
        }
    }
}

#[test]
fn both_calls_give_the_same_bits() {
    // 12-row tiles of one panel a call against 6-row tiles of two: rows across tiles and
    // tasks, key ranges ending inside a panel, head sizes of 1, 2 and 2.5 panels, windows
    let dev = Device::Cpu;
    for (t, total, d, vis) in [
        (100, 100, 64, causal(0, None)),
        (37, 37, 80, causal(0, None)),
        (30, 70, 32, causal(40, None)),
        (70, 70, 64, causal(0, Some(33))),
        (
            25,
            25,
            64,
            Visibility {
                offset: 0,
                causal: false,
                window: None,
            },
        ),
    ] {
        let tensor = |n: usize, heads: usize, seed| {
            Tensor::from_vec(random(heads * n * d, seed, 1.0), (1, heads, n, d), &dev).unwrap()
        };
        let (q, k, v) = (tensor(t, 6, 1), tensor(total, 2, 2), tensor(total, 2, 3));
        for kernel in [Kernel::Auto, Kernel::Portable] {
            let run = |call| -> Vec<u32> {
                let y = prefill_attention_with(&q, &k, &v, vis, kernel, call).unwrap();
                let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
                y.iter().map(|x| x.to_bits()).collect()
            };
            assert!(
                run(Shape::Rows12) == run(Shape::Rows6),
                "{kernel:?} t {t} total {total} d {d}: the calls differ"
            );
        }
    }
}

#[test]
fn exp_within_two_ulp() {
    let mut x: Vec<f32> = (0..20001).map(|i| -100.0 + i as f32 * 0.0094).collect();
    x.extend([0.0, -0.0, 1e-30, -87.0, 88.0, -103.0]);
    let mut y = x.clone();
    exp_all(&mut y);
    for (a, e) in x.iter().zip(&y) {
        let want = f64::from(*a).exp();
        let ulp = f64::from(f32::EPSILON) * want.max(f64::from(f32::MIN_POSITIVE));
        assert!(
            (f64::from(*e) - want).abs() <= 2.0 * ulp,
            "exp({a}) = {e}, want {want}"
        );
    }
    let mut edge = [f32::NAN, f32::NEG_INFINITY, -200.0, 200.0];
    exp_all(&mut edge);
    assert!(edge[0].is_nan());
    assert_eq!(&edge[1..], &[0.0, 0.0, f32::INFINITY]);
}

#[test]
fn softmax_exp_is_exp_of_the_shifted_values() {
    // softmax's exp skips `exp`'s upper clamp (its inputs are at most 0): each value must
    // still be, bit for bit, `exp` of (value - row maximum), and the sum theirs, for rows that end inside, at and past its 32-value main loop, with values far below
    // the maximum (0 after the lower clamp) and -inf
    for n in [1, 5, 16, 31, 32, 33, 64, 100, 515] {
        let mut row = random(n, 40 + n as u64, 60.0);
        row[n / 2] = -1e30;
        if n > 3 {
            row[3] = f32::NEG_INFINITY;
        }
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let mut want: Vec<f32> = row.iter().map(|&x| x - max).collect();
        exp_all(&mut want);
        let sum = exp_shifted(&mut row);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&row), bits(&want), "n {n}");
        let exact: f64 = want.iter().map(|&x| f64::from(x)).sum();
        assert!(
            (f64::from(sum) - exact).abs() <= 1e-6 * exact,
            "n {n}: {sum} vs {exact}"
        );
    }
}

#[test]
fn softmax_sums_to_one_and_propagates_nan() {
    for n in [1, 15, 16, 17, 100] {
        let mut row = random(n, n as u64, 30.0);
        softmax_in_place(&mut row);
        let sum: f64 = row.iter().map(|&x| f64::from(x)).sum();
        assert!((sum - 1.0).abs() < 1e-6, "n {n}: sum {sum}");
    }
    let mut row = vec![1.0, f32::NAN, 2.0];
    softmax_in_place(&mut row);
    assert!(row.iter().all(|x| x.is_nan()));
    // rows long enough for the maximum's four running chains, NaN in each part
    for at in [0, 17, 63, 64, 99] {
        let mut row = random(100, at as u64, 30.0);
        row[at] = f32::NAN;
        softmax_in_place(&mut row);
        assert!(row.iter().all(|x| x.is_nan()), "NaN at {at}");
    }
}

#[test]
fn silu_mul_matches_f64() {
    let g = random(1000, 3, 30.0);
    let u = random(1000, 4, 2.0);
    let mut out = vec![0f32; 1000];
    silu_mul_slices(&g, &u, &mut out);
    for ((&g, &u), &o) in g.iter().zip(&u).zip(&out) {
        let (g, u) = (f64::from(g), f64::from(u));
        let want = g / (1.0 + (-g).exp()) * u;
        assert!(
            (f64::from(o) - want).abs() <= 4e-7 * want.abs().max(1e-30),
            "silu({g})·{u} = {o}, want {want}"
        );
    }
}
