//! The packed f32 matrix product: the AVX-512 kernel computes bit for bit what the
//! portable one does, both agree with f64 arithmetic within the bound of a k-term f32
//! sum, and a row's result depends neither on the other rows in the batch (decode vs
//! prefill) nor on the number of threads.

mod common;

use candle_core::{Device, Tensor};
use llmdrop_kernels::gemm::{
    matmul, matmul_blocked, Blocking, PackedMatrix, Shape, MR, NR, SUM_BLOCK,
};
use llmdrop_kernels::Kernel;

use common::random_activations as random;

/// Row counts around the kernel's tile (12), its 1-3 row multi-panel calls and the
/// 384-row pass; inner sizes up to and across a 2048-value chunk (the chunk follows the
/// machine's L2: [`blockings_do_not_change_the_bits`] crosses small ones); output sizes below,
/// at and across the 32-row panel, including a 4-panel call with a partial panel.
const MS: [usize; 9] = [1, 2, 3, 5, MR, MR + 1, 25, 131, 400];
const KS: [usize; 5] = [1, 7, 300, 600, 2100];
const NS: [usize; 6] = [1, 31, NR, NR + 1, 100, 4 * NR + 5];

#[test]
fn pack_round_trips() {
    let (rows, cols) = (NR + 3, 5);
    let w = random(rows * cols, 1);
    let p = PackedMatrix::pack(&w, rows, cols);
    assert_eq!(p.unpack(), w);
    assert_eq!(p.panels(), 2);
    // padding to whole panels and to a cache line boundary is counted
    assert_eq!(p.bytes(), (2 * NR * cols + 16) * 4);
    let mut row = vec![0f32; cols];
    p.row(NR + 2, &mut row);
    assert_eq!(row, w[(NR + 2) * cols..(NR + 3) * cols]);
}

/// A matrix large enough to be packed on all threads (a million values and more), with a
/// partial last panel: the same layout as packing it row by row, in a 2-thread pool.
#[test]
fn large_matrices_pack_on_all_threads_to_the_same_layout() {
    let (rows, cols) = (33 * NR + 7, 997);
    let w = random(rows * cols, 3);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let p = pool.install(|| PackedMatrix::pack(&w, rows, cols));
    assert_eq!(p.unpack(), w);
    for r in [0, NR - 1, NR, rows - 1] {
        let mut row = vec![0f32; cols];
        p.row(r, &mut row);
        assert_eq!(row, w[r * cols..(r + 1) * cols], "row {r}");
    }
}

#[test]
fn simd_equals_portable_and_f64() {
    for (s, &m) in MS.iter().enumerate() {
        for &k in &KS {
            for &n in &NS {
                let x = random(m * k, 10 + s as u64);
                let w = random(n * k, 100 + k as u64);
                let p = PackedMatrix::pack(&w, n, k);
                let fast = matmul(&p, &x, Kernel::Auto);
                let portable = matmul(&p, &x, Kernel::Portable);
                assert_eq!(fast.len(), m * n);
                for (i, (a, b)) in fast.iter().zip(&portable).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "m {m} k {k} n {n} at {i}: {a} vs {b}"
                    );
                }
                // blocks of b = SUM_BLOCK products, each rounded in f32 as it is summed,
                // then ceil(k / b) block sums added: |error| <= (b + k / b)·u·Σ|x·w|
                // (+ u·|y|), where one k-term chain would allow k·u·Σ|x·w|
                let u = f64::from(f32::EPSILON) / 2.0;
                let terms = k.min(SUM_BLOCK) + k.div_ceil(SUM_BLOCK);
                for i in 0..m {
                    for j in 0..n {
                        let (mut exact, mut abs) = (0f64, 0f64);
                        for q in 0..k {
                            let t = f64::from(x[i * k + q]) * f64::from(w[j * k + q]);
                            exact += t;
                            abs += t.abs();
                        }
                        let got = f64::from(fast[i * n + j]);
                        let bound = (terms as f64 + 1.0) * u * abs;
                        assert!(
                            (got - exact).abs() <= bound,
                            "m {m} k {k} n {n} ({i},{j}): {got} vs {exact} (bound {bound})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_row_is_computed_the_same_alone_and_in_a_batch() {
    let (m, k, n) = (400, 2100, 4 * NR + 5);
    let x = random(m * k, 7);
    let p = PackedMatrix::pack(&random(n * k, 8), n, k);
    let batch = matmul(&p, &x, Kernel::Auto);
    for i in [0, 1, 11, 12, 383, 384, 399] {
        // alone (the decode kernel, 4 panels per call) and as the first of 2 and of 3 rows
        for rows in 1..=3.min(m - i) {
            let part = matmul(&p, &x[i * k..(i + rows) * k], Kernel::Auto);
            for j in 0..n {
                let (a, b) = (part[j], batch[i * n + j]);
                assert_eq!(a.to_bits(), b.to_bits(), "row {i} of {rows}, col {j}");
            }
        }
    }
}

#[test]
fn threads_do_not_change_the_result() {
    // large enough to be split across the pool
    let (m, k, n) = (40, 576, 1536);
    let x = random(m * k, 3);
    let p = PackedMatrix::pack(&random(n * k, 4), n, k);
    let run = |threads: usize, x: &[f32]| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| matmul(&p, x, Kernel::Auto))
    };
    for x in [&x[..], &x[..k]] {
        let one = run(1, x);
        let two = run(2, x);
        assert!(one
            .iter()
            .zip(&two)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

#[test]
fn agrees_with_candle_matmul() {
    let (m, k, n) = (37, 576, 192);
    let (x, w) = (random(m * k, 5), random(n * k, 6));
    let p = PackedMatrix::pack(&w, n, k);
    let ours = matmul(&p, &x, Kernel::Auto);
    let xt = Tensor::from_vec(x, (m, k), &Device::Cpu).unwrap();
    let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
    let theirs: Vec<f32> = xt
        .matmul(&wt.t().unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let scale = theirs.iter().fold(0f32, |a, b| a.max(b.abs()));
    let worst = ours
        .iter()
        .zip(&theirs)
        .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
    assert!(worst <= 1e-5 * scale, "max |diff| {worst} (scale {scale})");
}

#[test]
fn nan_stays_in_its_row() {
    let (m, k, n) = (MR + 2, 300, 70);
    let mut x = random(m * k, 9);
    x[5 * k + 299] = f32::NAN;
    let p = PackedMatrix::pack(&random(n * k, 10), n, k);
    for kernel in [Kernel::Auto, Kernel::Portable] {
        let y = matmul(&p, &x, kernel);
        for i in 0..m {
            let row = &y[i * n..(i + 1) * n];
            assert_eq!(row.iter().all(|v| v.is_nan()), i == 5, "row {i}");
            assert!(i == 5 || row.iter().all(|v| v.is_finite()), "row {i}");
        }
    }
}

#[test]
fn empty_input_gives_empty_output() {
    let p = PackedMatrix::pack(&random(3 * 4, 1), 3, 4);
    assert!(matmul(&p, &[], Kernel::Auto).is_empty());
    assert!(matmul(&p, &[], Kernel::Portable).is_empty());
}

#[test]
fn gated_pair_is_the_separate_route_bit_for_bit() {
    use llmdrop_kernels::gemm::GatedPair;
    use llmdrop_kernels::vexp::silu_mul_slices;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for (s, &m) in MS.iter().enumerate() {
        for &k in &KS {
            for &n in &NS {
                let x = random(m * k, 20 + s as u64);
                let (g, u) = (random(n * k, 200 + k as u64), random(n * k, 300 + n as u64));
                let (g, u) = (PackedMatrix::pack(&g, n, k), PackedMatrix::pack(&u, n, k));
                let pair = GatedPair::new(&g, &u);
                assert_eq!((pair.outputs(), pair.cols()), (n, k));
                for kernel in [Kernel::Auto, Kernel::Portable] {
                    let mut want = vec![0f32; m * n];
                    silu_mul_slices(&matmul(&g, &x, kernel), &matmul(&u, &x, kernel), &mut want);
                    let one = pair.product(&x, kernel);
                    let two = pool.install(|| pair.product(&x, kernel));
                    // both call shapes, whichever this machine chose
                    let [rows12, rows6] = [Shape::Rows12, Shape::Rows6].map(|shape| {
                        let b = Blocking {
                            shape,
                            ..Blocking::get()
                        };
                        pair.product_blocked(&x, kernel, b)
                    });
                    for (got, what) in [
                        (&one, "1 thread"),
                        (&two, "2 threads"),
                        (&rows12, "12x1"),
                        (&rows6, "6x2"),
                    ] {
                        assert_eq!(got.len(), m * n);
                        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                            assert_eq!(
                                a.to_bits(),
                                b.to_bits(),
                                "{kernel:?} {what} m {m} k {k} n {n} at {i}: {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Sums of positive products (every rounding error of a chain has the same sign and grows
/// with the running sum): the blocked sums of the kernel stay several times closer to the
/// exact result than one f32 chain over the whole input, on both kernels.
#[test]
fn blocked_sums_round_less_than_one_chain() {
    let (m, k, n) = (MR, 4096, NR);
    let positive = |len: usize, seed: u64| -> Vec<f32> {
        random(len, seed).iter().map(|v| 0.75 + 0.25 * v).collect()
    };
    let (x, w) = (positive(m * k, 5), positive(n * k, 6));
    let p = PackedMatrix::pack(&w, n, k);
    let (mut chain_err, mut exact) = (0f64, vec![0f64; m * n]);
    for i in 0..m {
        for j in 0..n {
            let (xs, ws) = (&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
            let chain = xs.iter().zip(ws).fold(0f32, |s, (a, b)| a.mul_add(*b, s));
            let e: f64 = xs
                .iter()
                .zip(ws)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            chain_err = chain_err.max((f64::from(chain) - e).abs());
            exact[i * n + j] = e;
        }
    }
    for kernel in [Kernel::Auto, Kernel::Portable] {
        let y = matmul(&p, &x, kernel);
        let err = y
            .iter()
            .zip(&exact)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0f64, f64::max);
        assert!(
            err * 4.0 < chain_err,
            "{kernel:?}: blocked sums {err:e} vs one chain {chain_err:e}"
        );
    }
}

#[test]
fn blockings_do_not_change_the_bits() {
    for (m, k, n) in [
        (131, 600, 4 * NR + 5),
        (400, 2100, NR + 1),
        (MR + 1, 300, 100),
    ] {
        let x = random(m * k, 7 + m as u64);
        let w = random(n * k, 70 + k as u64);
        let p = PackedMatrix::pack(&w, n, k);
        let reference = matmul(&p, &x, Kernel::Portable);
        for kc in [0, 1, 7, 256, 2048, k] {
            for mc in [0, 5, MR, 2 * MR, 384] {
                for shape in [Shape::Rows12, Shape::Rows6] {
                    for kernel in [Kernel::Auto, Kernel::Portable] {
                        let b = Blocking { kc, mc, shape };
                        let y = matmul_blocked(&p, &x, kernel, b);
                        let same = y
                            .iter()
                            .zip(&reference)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "m {m} k {k} n {n}: {b:?} {kernel:?} changed the bits");
                    }
                }
            }
        }
    }
}
