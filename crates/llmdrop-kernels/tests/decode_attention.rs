//! A decode step's attention (one query position over the cache): the AVX-512 path (16
//! keys scored at a time, the vectorized `exp`) and the plain loops (`Kernel::Portable`,
//! libm's `exp`) are both softmax(q Kᵀ) V in f64 to float rounding — for head sizes that
//! are and are not multiples of 16, key counts around the 16-key blocks, sliding windows,
//! grouped heads, and keys read from a cache buffer larger than the keys it holds. (The
//! blocked scores' bits equal the scalar loop's: a unit test in `decode_scores.rs`.)

use candle_core::{Device, Tensor};
use llmdrop_kernels::attention::decode_attention;
use llmdrop_kernels::Kernel;
use rand::{Rng, SeedableRng};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1f32..1f32)).collect()
}

struct Case {
    b: usize,
    heads: usize,
    kv_heads: usize,
    total: usize,
    d: usize,
    first: usize,
}

/// softmax over keys `first..total` of each head, in f64: `[b, heads, d]`.
fn reference(c: &Case, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f64> {
    let (groups, d) = (c.heads / c.kv_heads, c.d);
    let mut out = vec![0f64; c.b * c.heads * d];
    for bi in 0..c.b {
        for h in 0..c.heads {
            let qh = &q[(bi * c.heads + h) * d..][..d];
            let row = |x: &[f32], j: usize| {
                let at = ((bi * c.kv_heads + h / groups) * c.total + j) * d;
                x[at..at + d].to_vec()
            };
            let s: Vec<f64> = (c.first..c.total)
                .map(|j| {
                    let kj = row(k, j);
                    (0..d).map(|e| f64::from(qh[e]) * f64::from(kj[e])).sum()
                })
                .collect();
            let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - max).exp()).sum();
            let o = &mut out[(bi * c.heads + h) * d..][..d];
            for (j, sj) in (c.first..c.total).zip(&s) {
                let p = (sj - max).exp() / z;
                for (e, vj) in row(v, j).iter().enumerate() {
                    o[e] += p * f64::from(*vj);
                }
            }
        }
    }
    out
}

/// Runs `c` with keys and values in a cache buffer of `spare` more positions than they
/// hold (narrowed, as the KV cache hands them out); checks both kernels.
fn check(c: &Case, spare: usize, seed: u64) {
    let dev = Device::Cpu;
    let q = random(c.b * c.heads * c.d, seed);
    let k = random(c.b * c.kv_heads * c.total * c.d, seed + 1);
    let v = random(c.b * c.kv_heads * c.total * c.d, seed + 2);
    let want = reference(c, &q, &k, &v);
    let cache = |x: &[f32]| {
        let t = Tensor::from_vec(x.to_vec(), (c.b, c.kv_heads, c.total, c.d), &dev).unwrap();
        let pad = Tensor::zeros((c.b, c.kv_heads, spare, c.d), candle_core::DType::F32, &dev);
        Tensor::cat(&[t, pad.unwrap()], 2)
            .unwrap()
            .narrow(2, 0, c.total)
            .unwrap()
    };
    let (kt, vt) = (cache(&k), cache(&v));
    let qt = Tensor::from_vec(q, (c.b, c.heads, 1, c.d), &dev).unwrap();
    let run = |kernel| -> Vec<f32> {
        let y = decode_attention(&qt, &kt, &vt, c.first, kernel).unwrap();
        assert_eq!(y.dims(), &[c.b, c.heads, 1, c.d]);
        y.flatten_all().unwrap().to_vec1().unwrap()
    };
    for kernel in [Kernel::Auto, Kernel::Portable] {
        let worst = run(kernel)
            .iter()
            .zip(&want)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0f64, f64::max);
        // outputs are convex combinations of values in [-1, 1]
        assert!(
            worst < 2e-6,
            "{kernel:?} d {} total {} first {} spare {spare}: max |diff| {worst}",
            c.d,
            c.total,
            c.first
        );
    }
}

#[test]
fn sixteen_key_blocks_and_the_plain_loops_match_f64() {
    let mut seed = 0;
    for d in [16, 64, 128, 8, 80, 72] {
        for total in [1, 15, 16, 17, 31, 32, 33, 100, 300] {
            for (heads, kv_heads) in [(1, 1), (9, 3), (4, 2)] {
                seed += 3;
                let c = Case {
                    b: 2,
                    heads,
                    kv_heads,
                    total,
                    d,
                    first: 0,
                };
                check(&c, if total % 2 == 0 { 0 } else { 7 }, seed);
            }
        }
    }
}

#[test]
fn sliding_windows_start_the_blocks_at_the_first_visible_key() {
    let mut seed = 1000;
    for (total, first) in [(40, 3), (40, 24), (300, 299), (300, 1), (64, 48)] {
        for d in [64, 48] {
            seed += 3;
            let c = Case {
                b: 1,
                heads: 6,
                kv_heads: 2,
                total,
                d,
                first,
            };
            check(&c, 5, seed);
        }
    }
}

/// Scores far apart (one key dominates) and equal (a flat softmax) come out the same way.
#[test]
fn extreme_and_equal_scores() {
    let dev = Device::Cpu;
    let (heads, total, d) = (2, 48, 64);
    let mut k = vec![0.5f32; heads * total * d];
    k[17 * d..18 * d].iter_mut().for_each(|x| *x = 40.0);
    let q = vec![1f32; heads * d];
    let v = random(heads * total * d, 9);
    let qt = Tensor::from_vec(q, (1, heads, 1, d), &dev).unwrap();
    let kt = Tensor::from_vec(k, (1, heads, total, d), &dev).unwrap();
    let vt = Tensor::from_vec(v.clone(), (1, heads, total, d), &dev).unwrap();
    let run = |kernel| -> Vec<f32> {
        let y = decode_attention(&qt, &kt, &vt, 0, kernel).unwrap();
        y.flatten_all().unwrap().to_vec1().unwrap()
    };
    for kernel in [Kernel::Auto, Kernel::Portable] {
        let got = run(kernel);
        // head 0: key 17 takes all the weight; head 1: keys all 0.5s, a uniform average
        assert_eq!(&got[..d], &v[17 * d..18 * d], "{kernel:?}");
        for e in 0..d {
            let mean: f64 = (0..total)
                .map(|j| f64::from(v[(total + j) * d + e]))
                .sum::<f64>()
                / total as f64;
            assert!((f64::from(got[d + e]) - mean).abs() < 1e-6, "{kernel:?}");
        }
    }
}

#[test]
fn heads_split_across_threads_give_one_threads_bits() {
    // 9 query heads on 3 kv heads of 64, as the default model: at depth 300 (2700 head-key
    // pairs) and 2000 the heads are split across the pool's threads, and each head's
    // result must not depend on the thread that computed it
    let dev = Device::Cpu;
    for (total, first) in [(300, 0), (2000, 0), (2000, 1500)] {
        let (heads, kv_heads, d) = (9, 3, 64);
        let q = Tensor::from_vec(random(heads * d, 21), (1, heads, 1, d), &dev).unwrap();
        let kv = |seed| {
            Tensor::from_vec(
                random(kv_heads * total * d, seed),
                (1, kv_heads, total, d),
                &dev,
            )
            .unwrap()
        };
        let (k, v) = (kv(22), kv(23));
        for kernel in [Kernel::Auto, Kernel::Portable] {
            let on = |threads| -> Vec<u32> {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let y = pool.install(|| decode_attention(&q, &k, &v, first, kernel).unwrap());
                let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
                y.iter().map(|x| x.to_bits()).collect()
            };
            assert_eq!(on(1), on(2), "{kernel:?} depth {total} from {first}");
        }
    }
}
