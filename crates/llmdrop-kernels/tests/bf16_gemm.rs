//! The bf16 matrix product in both orders: the AVX-512 BF16 kernel ([`Order::Chain`]) and
//! the AMX kernel ([`Order::Tiles`]) compute bit for bit what their portable twins do
//! (random shapes around the tiles, the decode row and the chunk; 1 and 2 threads; random
//! bit patterns with subnormals, infinities and NaNs), all agree with f64 arithmetic on
//! the bf16-rounded inputs, and hand-checked cases pin the rounding of activations and
//! the order, DAZ/FTZ and special-value rules of the chain (`bf16_tiles.rs` those of the
//! tiles).
//!
//! On a CPU without AVX-512 BF16 or AMX, `Kernel::Auto` is the portable code for that
//! order: the tests say so on stderr and check the portable path (against f64 and the
//! hand-checked cases) alone.

mod common;

use half::bf16;
use llmdrop_kernels::gemm::bf16::{matmul, matmul_in, round, Bf16Matrix, Order};
use llmdrop_kernels::gemm::{MR, NR};
use llmdrop_kernels::{caps, Error, Kernel};
use rand::{Rng, SeedableRng};

use common::random_activations as random;

/// Row counts around the 12-row tile and the 1-3 row multi-panel calls; inner sizes odd
/// and even, below and above one pair and the 16/32 lanes; output sizes below, at and
/// across the 32-row panel, with a 4-panel decode call over a partial panel.
const MS: [usize; 8] = [1, 2, 3, 5, MR, MR + 1, 25, 131];
const KS: [usize; 7] = [1, 2, 3, 7, 64, 301, 600];
const NS: [usize; 6] = [1, 31, NR, NR + 1, 100, 4 * NR + 5];

/// Whether the SIMD kernels run here; says so on stderr for each that does not.
fn simd_here() -> bool {
    let simd = caps().avx512_bf16();
    if !simd {
        eprintln!(
            "this CPU lacks AVX-512 BF16: Kernel::Auto runs the portable chain, so only the \
             portable path of Order::Chain is checked"
        );
    }
    if !caps().amx_bf16() {
        eprintln!(
            "this CPU (or its operating system) gives no AMX-BF16 tiles: Kernel::Auto runs \
             the portable tiles, so only the portable path of Order::Tiles is checked"
        );
    }
    simd
}

/// Both orders, and the name of the kernel `Kernel::Auto` runs each on here.
fn orders() -> [(Order, &'static str); 2] {
    let chain = if caps().avx512_bf16() {
        "avx512-bf16"
    } else {
        "portable"
    };
    let tiles = if caps().amx_bf16() {
        "amx-bf16"
    } else {
        "portable"
    };
    [(Order::Chain, chain), (Order::Tiles, tiles)]
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// Equal bits, or both NaN (the payload of a NaN is not specified); in the tiles order
/// equal bits or both not finite (AMX gives ±∞ for some sums IEEE arithmetic makes NaN).
fn same(a: f32, b: f32, order: Order) -> bool {
    a.to_bits() == b.to_bits()
        || match order {
            Order::Chain => a.is_nan() && b.is_nan(),
            Order::Tiles => !a.is_finite() && !b.is_finite(),
        }
}

fn assert_same(got: &[f32], want: &[f32], what: &str) {
    assert_same_in(got, want, what, Order::Chain)
}

fn assert_same_in(got: &[f32], want: &[f32], what: &str, order: Order) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            same(*a, *b, order),
            "{what} at {i}: {a:e} ({:08x}) vs {b:e} ({:08x})",
            a.to_bits(),
            b.to_bits()
        );
    }
}

/// `random(n)` as bf16 weights (rounded from f32).
fn weights(n: usize, seed: u64) -> Vec<bf16> {
    random(n, seed).into_iter().map(round).collect()
}

/// The product in each order on the SIMD kernel (1 and 2 threads) and the portable one
/// (2 threads): all the same bits. Returns the portable results, chain then tiles.
fn checked_product(w: &Bf16Matrix, x: &[f32], what: &str) -> [Vec<f32>; 2] {
    let (one, two) = (pool(1), pool(2));
    orders().map(|(order, name)| {
        let portable = two
            .install(|| matmul_in(w, x, Kernel::Portable, order))
            .unwrap();
        let auto1 = one
            .install(|| matmul_in(w, x, Kernel::Auto, order))
            .unwrap();
        let auto2 = two
            .install(|| matmul_in(w, x, Kernel::Auto, order))
            .unwrap();
        assert_same_in(
            &auto1,
            &portable,
            &format!("{name}, 1 thread, {what}"),
            order,
        );
        assert_same_in(
            &auto2,
            &portable,
            &format!("{name}, 2 threads, {what}"),
            order,
        );
        portable
    })
}

#[test]
fn simd_equals_portable_and_f64_on_random_shapes() {
    simd_here();
    let mut worst = 0f64;
    for (s, &m) in MS.iter().enumerate() {
        for &k in &KS {
            for &n in &NS {
                let x = random(m * k, 10 + s as u64);
                let wb = weights(n * k, 100 + k as u64);
                let w = Bf16Matrix::pack(&wb, n, k).unwrap();
                let both = checked_product(&w, &x, &format!("m {m} k {k} n {n}"));
                // f64 on the rounded inputs: a k-step f32 chain (or two chains and the
                // block sums) is off by far less than 1e-6 of the sum of |products| on such
                // data (its bound is k·2^-24)
                for (i, y) in (0..m).flat_map(|i| both.iter().map(move |y| (i, y))) {
                    for j in 0..n {
                        let (mut exact, mut abs) = (0f64, 0f64);
                        for q in 0..k {
                            let t = f64::from(round(x[i * k + q])) * f64::from(wb[j * k + q]);
                            exact += t;
                            abs += t.abs();
                        }
                        let err = (f64::from(y[i * n + j]) - exact).abs();
                        assert!(
                            err <= 1e-6 * abs,
                            "m {m} k {k} n {n} ({i},{j}): {} vs {exact} (sum |products| {abs})",
                            y[i * n + j]
                        );
                        if abs > 0.0 {
                            worst = worst.max(err / abs);
                        }
                    }
                }
            }
        }
    }
    eprintln!("worst |error| / sum |products| vs f64: {worst:.2e}");
}

#[test]
fn long_rows_cross_the_chunk_and_the_row_pass() {
    simd_here();
    // 2049 input pairs: one more than a 2048-pair chunk (the second chunk starts from the
    // first one's stored sums); 389 rows: past the 384-row pass, whose last 5 rows take two
    // panels a call (AMX) in both chunks; odd k
    for (m, k, n) in [
        (389, 4097, 2 * NR + 1),
        (MR + 1, 4098, 2 * NR),
        (1, 4099, 4 * NR + 1),
    ] {
        let x = random(m * k, 11);
        let w = Bf16Matrix::from_f32(&random(n * k, 12), n, k).unwrap();
        checked_product(&w, &x, &format!("m {m} k {k} n {n}"));
    }
}

#[test]
fn random_bit_patterns_with_subnormals_infinities_and_nans() {
    simd_here();
    // per row and per output a scale from subnormal to near overflow, so sums underflow
    // (FTZ), overflow, meet ±∞, ∞·0 and NaN; every 16th value any bit pattern
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let scales = [-140, -75, -64, -20, 0, 30, 63, 120];
    for (m, k, n) in [(MR + 3, 64, 2 * NR + 3), (1, 33, 4 * NR), (3, 10, 70)] {
        let mut x = vec![0f32; m * k];
        for (i, v) in x.iter_mut().enumerate() {
            let e = scales[(i / k) % scales.len()];
            *v = if i % 16 == 5 {
                f32::from_bits(rng.random())
            } else {
                rng.random_range(-2.0f32..2.0) * 2f32.powi(e)
            };
        }
        let mut w = vec![bf16::ZERO; n * k];
        for (i, v) in w.iter_mut().enumerate() {
            let e = -scales[(i / k) % scales.len()] / 2;
            *v = if i % 16 == 9 {
                bf16::from_bits(rng.random())
            } else {
                round(rng.random_range(-2.0f32..2.0) * 2f32.powi(e))
            };
        }
        let w = Bf16Matrix::pack(&w, n, k).unwrap();
        let [chain, tiles] = checked_product(&w, &x, &format!("bit patterns m {m} k {k} n {n}"));
        assert!(chain.iter().any(|v| v.is_nan()) && chain.iter().any(|v| v.is_finite()));
        assert!(tiles.iter().any(|v| !v.is_finite()) && tiles.iter().any(|v| v.is_finite()));
    }
}

/// `x` (`[m, k]`) times `w` (`[n, k]`, bf16-exact f32 values) on both kernels, which must
/// agree; the result.
fn both(x: &[f32], w: &[f32], n: usize) -> Vec<f32> {
    let k = w.len() / n;
    let w = Bf16Matrix::from_f32(w, n, k).unwrap();
    let auto = matmul_in(&w, x, Kernel::Auto, Order::Chain).unwrap();
    let portable = matmul_in(&w, x, Kernel::Portable, Order::Chain).unwrap();
    assert_same(&auto, &portable, orders()[0].1);
    portable
}

#[test]
fn the_sum_runs_over_the_inputs_in_order_rounding_each_step() {
    simd_here();
    let (u23, u24) = (2f32.powi(-23), 2f32.powi(-24));
    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    // across a pair and within one (inputs 2, 3 are one lane): 1 + 2^-23 then + 2^-24 is a
    // tie to the even 1 + 2^-22; 1 + 2^-24 first is a tie back to 1, then 1 + 2^-23; two
    // 2^-24 steps leave 1 (one rounding of the whole sum would give 1 + 2^-23)
    let x = [
        [1.0, u23, u24, 0.0],
        [1.0, u24, u23, 0.0],
        [1.0, 0.0, u23, u24],
        [1.0, 0.0, u24, u23],
        [1.0, u24, u24, 0.0],
    ]
    .concat();
    let y = both(&x, &[1.0; 4], 1);
    assert_eq!(
        bits(&y),
        [
            0x3f80_0002,
            0x3f80_0001,
            0x3f80_0002,
            0x3f80_0001,
            0x3f80_0000
        ]
    );
}

#[test]
fn subnormals_flush_and_padding_and_special_values_follow_the_instruction() {
    simd_here();
    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let (min, p75, p76) = (f32::MIN_POSITIVE, 2f32.powi(-75), 2f32.powi(-76));
    // a subnormal weight (bf16 0x0001) or activation (1e-39 rounds to a bf16 subnormal) is
    // read as zero: +0, where IEEE arithmetic gives about 9.2e-41 and 1e-39
    let w = Bf16Matrix::pack(&[bf16::from_bits(0x0001), bf16::ONE], 1, 2).unwrap();
    for kernel in [Kernel::Auto, Kernel::Portable] {
        let y = matmul_in(&w, &[1.0, 0.0, 0.0, 1e-39], kernel, Order::Chain).unwrap();
        assert_eq!(bits(&y), [0, 0], "{kernel:?}");
    }
    // 2^-126 - 1.5·2^-151 is tiny after rounding to 24 bits: flushed to +0 (rounded as a
    // subnormal it would be 2^-126); 2^-126 - 2^-151 is the tie that rounds up to 2^-126
    let y = both(&[min, p75], &[1.0, -1.5 * p76, 1.0, -p76], 2);
    assert_eq!(bits(&y), [0, min.to_bits()]);
    // a tiny negative sum is -0; an odd row's padding step (+0·+0) then makes it +0
    let t = 2f32.powi(-70);
    let y = both(&[t, -1.0], &[-t, 0.0], 1);
    assert_eq!(bits(&y), [(-0f32).to_bits()]);
    let y = both(&[t], &[-t], 1);
    assert_eq!(bits(&y), [0]);
    // ∞·w is ±∞, ∞·0 NaN, a sum past f32's range +∞, a NaN input NaN in its row only
    let x = [
        [f32::INFINITY, 1.0],
        [1.0, f32::INFINITY],
        [-3e38, 3e38],
        [f32::NAN, 1.0],
    ]
    .concat();
    let y = both(&x, &[1.0, 0.0, -1.0, 1.0], 2);
    assert_eq!(y[0], f32::INFINITY);
    assert_eq!(y[1], f32::NEG_INFINITY);
    assert!(y[2].is_nan());
    assert_eq!(y[3], f32::INFINITY);
    assert_eq!(y[4], -round(3e38).to_f32());
    assert_eq!(y[5], f32::INFINITY);
    assert!(y[6].is_nan() && y[7].is_nan());
}

#[test]
fn a_row_is_computed_the_same_alone_and_in_a_batch() {
    let (m, k, n) = (40, 301, 4 * NR + 5);
    let x = random(m * k, 7);
    let w = Bf16Matrix::from_f32(&random(n * k, 8), n, k).unwrap();
    let runs = [Kernel::Auto, Kernel::Portable]
        .into_iter()
        .flat_map(|kernel| [Order::Chain, Order::Tiles].map(|order| (kernel, order)));
    for (kernel, order) in runs {
        let batch = matmul_in(&w, &x, kernel, order).unwrap();
        // the rows of the tiles' first (32-row) call and of the one after it
        for i in [0, 1, 11, 12, 31, 32, 37] {
            // alone (the decode call, 4 panels) and as the first of 2 and of 3 rows
            for rows in 1..=3.min(m - i) {
                let part = matmul_in(&w, &x[i * k..(i + rows) * k], kernel, order).unwrap();
                assert_same(
                    &part[..n],
                    &batch[i * n..(i + 1) * n],
                    &format!("{kernel:?} {order:?} row {i} of {rows}"),
                );
            }
        }
    }
}

/// A matrix large enough to be packed on all threads (a million values and more), with a
/// partial last panel and an odd width: the same values back, in a 2-thread pool.
#[test]
fn large_matrices_pack_on_all_threads_to_the_same_layout() {
    let (rows, cols) = (33 * NR + 7, 997);
    let f = random(rows * cols, 4);
    let w: Vec<bf16> = f.iter().map(|&v| round(v)).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let (p, q) = pool.install(|| {
        (
            Bf16Matrix::pack(&w, rows, cols).unwrap(),
            Bf16Matrix::from_f32(&f, rows, cols).unwrap(),
        )
    });
    assert_eq!(p.unpack(), w);
    assert_eq!(q.unpack(), w);
}

#[test]
fn pack_round_trips_and_counts_its_padding() {
    let (rows, cols) = (NR + 3, 5);
    let w = weights(rows * cols, 1);
    let p = Bf16Matrix::pack(&w, rows, cols).unwrap();
    assert_eq!(p.unpack(), w);
    assert_eq!((p.rows(), p.cols(), p.panels()), (rows, cols, 2));
    // 2 panels of 3 pairs of 32 lanes, each padded to a block of 16 pairs, and a cache
    // line of alignment slack
    assert_eq!(p.bytes(), (2 * 16 * NR + 16) * 4);
    let mut row = vec![bf16::ZERO; cols];
    p.row(NR + 2, &mut row);
    assert_eq!(row, w[(NR + 2) * cols..(NR + 3) * cols]);
    // from f32: the values rounded
    let f: Vec<f32> = random(rows * cols, 2);
    let q = Bf16Matrix::from_f32(&f, rows, cols).unwrap();
    assert_eq!(q.unpack(), f.iter().map(|&v| round(v)).collect::<Vec<_>>());
}

#[test]
fn wrong_lengths_are_errors() {
    let w = weights(3 * 4, 1);
    assert!(matches!(
        Bf16Matrix::pack(&w[..11], 3, 4),
        Err(Error::Length {
            values: 11,
            rows: 3,
            cols: 4
        })
    ));
    assert!(matches!(
        Bf16Matrix::from_f32(&[1.0; 13], 3, 4),
        Err(Error::Length { values: 13, .. })
    ));
    let p = Bf16Matrix::pack(&w, 3, 4).unwrap();
    for kernel in [Kernel::Auto, Kernel::Portable] {
        let err = matmul(&p, &[1.0; 9], kernel).unwrap_err();
        assert!(matches!(err, Error::Width { values: 9, cols: 4 }), "{err}");
        assert!(err.to_string().contains("no whole number of rows of 4"));
        assert!(matmul(&p, &[], kernel).unwrap().is_empty());
        assert_eq!(matmul(&p, &[1.0; 8], kernel).unwrap().len(), 6);
    }
    // no columns: only an empty input; no rows: empty outputs
    let none = Bf16Matrix::pack(&[], 3, 0).unwrap();
    assert!(matmul(&none, &[], Kernel::Auto).unwrap().is_empty());
    assert!(matches!(
        matmul(&none, &[1.0], Kernel::Auto),
        Err(Error::Width { .. })
    ));
    let empty = Bf16Matrix::pack(&[], 0, 4).unwrap();
    assert!(matmul(&empty, &[1.0; 8], Kernel::Auto).unwrap().is_empty());
}
