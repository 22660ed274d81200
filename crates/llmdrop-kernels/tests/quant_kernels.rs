//! The quantized matrix layout and kernels: GGUF blocks repack exactly (checked against
//! candle's GGUF dequantizer), our quantizers agree with ggml's, and the SIMD kernel
//! computes the same products as the portable one and as f64 arithmetic on the
//! dequantized operands.

mod common;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use llmdrop_kernels::quant::{gated, matmul, matmul_shared, QActs, QKind, QMatrix};
use llmdrop_kernels::Kernel;

use common::random_activations as random;

/// candle's GGUF quantizer and dequantizer on the same data.
fn ggml(data: &[f32], rows: usize, cols: usize, t: GgmlDType) -> (Vec<u8>, Vec<f32>) {
    let x = Tensor::from_vec(data.to_vec(), (rows, cols), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&x, t).unwrap();
    let deq = q.dequantize(&Device::Cpu).unwrap();
    (
        q.data().unwrap().into_owned(),
        deq.flatten_all().unwrap().to_vec1().unwrap(),
    )
}

#[test]
fn gguf_blocks_repack_without_rounding() {
    // 37 rows: not a multiple of the 16-row groups
    let (rows, cols) = (37, 96);
    let data = random(rows * cols, 1);
    for t in [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q4_1] {
        let (bytes, want) = ggml(&data, rows, cols, t);
        let q = QMatrix::from_ggml(t, &bytes, rows, cols, None)
            .unwrap()
            .expect("exact repack");
        assert_eq!(q.dequantize(), want, "{t:?}");
        // a row order (as for llama.cpp's permuted q/k rows) picks stored rows
        let order: Vec<usize> = (0..rows).rev().collect();
        let r = QMatrix::from_ggml(t, &bytes, rows, cols, Some(&order))
            .unwrap()
            .unwrap();
        let mut row = vec![0f32; cols];
        r.dequantize_row(0, &mut row);
        assert_eq!(row, want[(rows - 1) * cols..], "{t:?} reordered");
    }
    // Q4_K: 256-element super-blocks, rows of 512
    let (rows, cols) = (20, 512);
    let data = random(rows * cols, 11);
    let (bytes, want) = ggml(&data, rows, cols, GgmlDType::Q4K);
    let q = QMatrix::from_ggml(GgmlDType::Q4K, &bytes, rows, cols, None)
        .unwrap()
        .expect("exact repack");
    assert_eq!(q.dequantize(), want, "Q4K");
    assert_eq!(q.kind(), QKind::Q4);
    // the kernels on its f32 scales
    let x = random(3 * cols, 12);
    let fast = matmul(&q, &x, Kernel::Auto);
    let slow = matmul(&q, &x, Kernel::Portable);
    let exact_y = exact(&q, &x);
    let scale: f64 = exact_y.iter().map(|v| v.abs()).fold(0.0, f64::max);
    for i in 0..fast.len() {
        assert!((fast[i] - slow[i]).abs() as f64 <= 1e-6 * scale);
        assert!(
            (fast[i] as f64 - exact_y[i]).abs() <= 1e-5 * scale,
            "Q4K [{i}]"
        );
    }
    assert!(
        QMatrix::from_ggml(GgmlDType::Q6K, &[], 16, 256, None)
            .unwrap()
            .is_none(),
        "Q6_K is requantized, not repacked"
    );
    let short = QMatrix::from_ggml(GgmlDType::Q8_0, &[0; 10], 2, 32, None);
    assert!(short.is_err(), "truncated data is an error");
}

#[test]
fn quantizers_agree_with_ggml() {
    let (rows, cols) = (20, 128);
    let data = random(rows * cols, 2);
    for (kind, t) in [(QKind::Q8, GgmlDType::Q8_0), (QKind::Q4, GgmlDType::Q4_1)] {
        let ours = QMatrix::quantize(kind, &data, rows, cols)
            .unwrap()
            .dequantize();
        let (_, want) = ggml(&data, rows, cols, t);
        // the same rule; a value exactly between two steps may round either way
        let step = |i: usize| {
            let b = &want[i / 32 * 32..i / 32 * 32 + 32];
            let (lo, hi) = b
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, c), &v| (a.min(v), c.max(v)));
            (hi - lo) / if kind == QKind::Q8 { 254.0 } else { 15.0 }
        };
        let differ = (0..data.len()).filter(|&i| ours[i] != want[i]).count();
        assert!(
            differ * 1000 <= data.len(),
            "{kind:?}: {differ} values differ"
        );
        for i in 0..data.len() {
            assert!(
                (ours[i] - want[i]).abs() <= step(i) * 1.01,
                "{kind:?} at {i}"
            );
        }
    }
    let bad = QMatrix::quantize(QKind::Q8, &[f32::NAN; 32], 1, 32);
    assert!(bad.is_err(), "non-finite weights are refused");
    assert!(QMatrix::quantize(QKind::Q8, &[0.0; 30], 1, 30).is_err());
}

/// `x Wᵀ` in f64 from dequantized weights and dequantized activations: the exact value of
/// what the kernel computes, up to f32 rounding.
fn exact(w: &QMatrix, x: &[f32]) -> Vec<f64> {
    let (n, k) = (w.rows(), w.cols());
    let wd = w.dequantize();
    let xd = QActs::quantize(x, k).dequantize();
    let m = x.len() / k;
    let mut y = vec![0f64; m * n];
    for j in 0..m {
        for r in 0..n {
            y[j * n + r] = (0..k)
                .map(|i| wd[r * k + i] as f64 * xd[j * k + i] as f64)
                .sum();
        }
    }
    y
}

#[test]
fn kernels_compute_the_dequantized_product() {
    for kind in [QKind::Q8, QKind::Q4] {
        for (n, k) in [(37, 96), (64, 576)] {
            let w = QMatrix::quantize(kind, &random(n * k, 3), n, k).unwrap();
            // 1..9 activation rows: every tail of the 4-row tiles
            for m in [1, 2, 3, 4, 5, 9] {
                let x = random(m * k, 4 + m as u64);
                let fast = matmul(&w, &x, Kernel::Auto);
                let slow = matmul(&w, &x, Kernel::Portable);
                let want = exact(&w, &x);
                let scale: f64 = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
                for i in 0..fast.len() {
                    assert!(
                        (fast[i] - slow[i]).abs() <= 1e-6 * scale as f32,
                        "{kind:?} {n}x{k} m={m}: {} kernel {} vs portable {}",
                        Kernel::Auto.quant_name(),
                        fast[i],
                        slow[i]
                    );
                    assert!(
                        (fast[i] as f64 - want[i]).abs() <= 1e-5 * scale,
                        "{kind:?} {n}x{k} m={m} [{i}]: {} vs exact {}",
                        fast[i],
                        want[i]
                    );
                }
            }
        }
    }
}

#[test]
fn activation_error_stays_within_half_a_step() {
    // against the true f32 input: each activation is off by at most half its block's step
    let (n, k) = (16, 256);
    let w = QMatrix::quantize(QKind::Q8, &random(n * k, 5), n, k).unwrap();
    let wd = w.dequantize();
    let x = random(k, 6);
    let y = matmul(&w, &x, Kernel::Auto);
    for r in 0..n {
        let (mut want, mut bound) = (0f64, 0f64);
        for i in 0..k {
            let amax = x[i / 32 * 32..i / 32 * 32 + 32]
                .iter()
                .fold(0f32, |a, v| a.max(v.abs()));
            want += wd[r * k + i] as f64 * x[i] as f64;
            bound += (wd[r * k + i] as f64).abs() * amax as f64 / 254.0;
        }
        assert!(
            (y[r] as f64 - want).abs() <= bound * 1.001 + 1e-5,
            "row {r}: {} vs {want} (bound {bound})",
            y[r]
        );
    }
}

#[test]
fn activation_quantizers_agree() {
    // values on exact half steps: both round half to even
    let mut x = random(64 * 576, 9);
    x[0] = 127.0;
    for (i, v) in x[1..32].iter_mut().enumerate() {
        *v = i as f32 + 0.5;
    }
    let a = QActs::quantize_with(&x, 576, Kernel::Auto);
    let b = QActs::quantize_with(&x, 576, Kernel::Portable);
    assert_eq!(a.dequantize(), b.dequantize());
    // 2.5 with d = 1 rounds to 2, 3.5 to 4
    assert_eq!(&b.dequantize()[3..5], &[2.0, 4.0]);
}

#[test]
fn non_finite_activations_propagate() {
    let w = QMatrix::quantize(QKind::Q4, &random(16 * 64, 7), 16, 64).unwrap();
    let mut x = random(64, 8);
    x[40] = f32::NAN;
    let y = matmul(&w, &x, Kernel::Auto);
    assert!(y.iter().all(|v| v.is_nan()), "{y:?}");
}

/// The same assertions on 1 and 2 threads: a product split across the pool writes the
/// same values as one thread.
fn on_one_and_two_threads(f: impl Fn(&str) + Sync) {
    f("1 thread");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| f("2 threads"));
}

fn same_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "{what} at {i}: {a} vs {b}");
    }
}

#[test]
fn products_sharing_an_input_are_each_matmul_bit_for_bit() {
    let k = 576;
    // a query, key and value projection's shapes (a partial group in the second), kinds
    // mixed as GGUF files mix them
    let ws = [
        QMatrix::quantize(QKind::Q4, &random(64 * k, 11), 64, k).unwrap(),
        QMatrix::quantize(QKind::Q8, &random(37 * k, 12), 37, k).unwrap(),
        QMatrix::quantize(QKind::Q4, &random(192 * k, 13), 192, k).unwrap(),
    ];
    let refs: Vec<&QMatrix> = ws.iter().collect();
    for m in [1, 3, 5, 9, 130] {
        let x = random(m * k, 14 + m as u64);
        for kernel in [Kernel::Auto, Kernel::Portable] {
            // the reference: each product alone, on one thread
            let want: Vec<Vec<f32>> = ws.iter().map(|w| matmul(w, &x, kernel)).collect();
            on_one_and_two_threads(|threads| {
                let got = matmul_shared(&refs, &x, kernel);
                assert_eq!(got.len(), ws.len());
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    same_bits(g, w, &format!("{kernel:?} {threads} m {m} matrix {i}"));
                }
            });
        }
    }
    assert!(matmul_shared(&refs, &[], Kernel::Auto)
        .iter()
        .all(Vec::is_empty));
}

#[test]
fn gated_product_is_the_separate_route_bit_for_bit() {
    use llmdrop_kernels::vexp::silu_mul_slices;
    for (n, k) in [(37, 96), (1536, 576)] {
        for (gk, uk) in [(QKind::Q4, QKind::Q4), (QKind::Q8, QKind::Q4)] {
            let gate = QMatrix::quantize(gk, &random(n * k, 21 + n as u64), n, k).unwrap();
            let up = QMatrix::quantize(uk, &random(n * k, 22 + k as u64), n, k).unwrap();
            for m in [1, 2, 5, 9, 67] {
                let x = random(m * k, 23 + m as u64);
                for kernel in [Kernel::Auto, Kernel::Portable] {
                    let mut want = vec![0f32; m * n];
                    silu_mul_slices(
                        &matmul(&gate, &x, kernel),
                        &matmul(&up, &x, kernel),
                        &mut want,
                    );
                    // SiLU does change the values: the test would notice a missing one
                    assert_ne!(want, matmul(&up, &x, kernel));
                    on_one_and_two_threads(|threads| {
                        let got = gated(&gate, &up, &x, kernel);
                        let what = format!("{gk:?}/{uk:?} {n}x{k} {kernel:?} {threads} m {m}");
                        same_bits(&got, &want, &what);
                    });
                }
            }
        }
    }
}
