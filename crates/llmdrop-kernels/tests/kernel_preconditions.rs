//! The safe wrappers of the unsafe kernels check in release what the kernels assume: bad
//! lengths, ragged inputs and mismatched shapes end in a clean panic with a message (or an
//! error), never in a read or write past a buffer. And the SIMD paths are chosen only on a
//! CPU with every feature they are compiled for.

mod common;

use std::panic::{catch_unwind, UnwindSafe};

use candle_core::{Device, Tensor};
use common::random_activations as random;
use llmdrop_kernels::attention::{decode_attention, prefill_attention, Visibility};
use llmdrop_kernels::dot::dot;
use llmdrop_kernels::gemm::{self, GatedPair, PackedMatrix};
use llmdrop_kernels::quant::{self, QActs, QKind, QMatrix};
use llmdrop_kernels::vexp::silu_mul_slices;
use llmdrop_kernels::{caps, Kernel};

/// The message of the panic `f` must raise.
fn panic_message(f: impl FnOnce() + UnwindSafe) -> String {
    let err = catch_unwind(f).expect_err("a caller bug must panic, not run on");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
#[cfg(target_arch = "x86_64")]
fn simd_paths_need_every_feature_they_are_compiled_for() {
    // `avx512f` kernels: rustc also enables (and uses) what AVX-512 F implies
    let caps = caps();
    if caps.avx512f() {
        assert!(caps.avx2_fma());
        assert!(is_x86_feature_detected!("avx512f"));
        assert!(is_x86_feature_detected!("avx2"));
        assert!(is_x86_feature_detected!("fma"));
        assert!(is_x86_feature_detected!("f16c"));
        assert!(is_x86_feature_detected!("avx"));
        assert!(is_x86_feature_detected!("sse4.2"));
    }
    // the VNNI kernels are compiled for `avx512f,avx512bw,avx512vnni`
    if caps.avx2_fma() {
        assert!(is_x86_feature_detected!("avx2"));
        assert!(is_x86_feature_detected!("fma"));
        assert!(is_x86_feature_detected!("sse4.2"));
    }
    if Kernel::Auto.quant_name() == "avx512-vnni" {
        assert!(caps.avx512_vnni());
        assert!(caps.avx512f());
        assert!(is_x86_feature_detected!("avx512bw"));
        assert!(is_x86_feature_detected!("avx512vnni"));
    }
    assert_eq!(Kernel::Portable.quant_name(), "portable");
    // the bf16 kernel is compiled for `avx512bf16,avx512f`, its activation pass for
    // `avx512f,avx512bw`
    if Kernel::Auto.bf16_name() == "avx512-bf16" {
        assert!(caps.avx512_bf16());
        assert!(caps.avx512f());
        assert!(is_x86_feature_detected!("avx512bw"));
        assert!(is_x86_feature_detected!("avx512bf16"));
    }
    assert_eq!(Kernel::Portable.bf16_name(), "portable");
}

#[test]
fn dot_of_ragged_slices_panics() {
    let (a, b) = (random(40, 1), random(33, 2));
    let msg = panic_message(|| {
        dot(&a, &b);
    });
    assert!(msg.contains("different lengths"), "{msg}");
    // equal lengths of every size around the 16 lanes still work
    for n in [0, 1, 15, 16, 17, 33] {
        let (a, b) = (random(n, 3), random(n, 4));
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot(&a, &b) as f64 - exact).abs() < 1e-5, "n={n}");
    }
}

#[test]
fn silu_mul_of_ragged_slices_panics() {
    let (g, u) = (random(17, 1), random(16, 2));
    let msg = panic_message(|| {
        let mut out = vec![0f32; 17];
        silu_mul_slices(&g, &u, &mut out);
    });
    assert!(msg.contains("lengths differ"), "{msg}");
    let msg = panic_message(|| {
        let mut out = [0f32; 15];
        silu_mul_slices(&u, &u, &mut out);
    });
    assert!(msg.contains("lengths differ"), "{msg}");
}

#[test]
fn packed_and_gated_products_check_the_input_width() {
    let (n, k) = (40, 24);
    let gate = PackedMatrix::pack(&random(n * k, 1), n, k);
    let up = PackedMatrix::pack(&random(n * k, 2), n, k);
    let pair = GatedPair::new(&gate, &up);
    let x = random(3 * k + 5, 3);
    for kernel in [Kernel::Auto, Kernel::Portable] {
        let msg = panic_message(|| {
            gemm::matmul(&gate, &x, kernel);
        });
        assert!(msg.contains("input width"), "{msg}");
        let msg = panic_message(|| {
            pair.product(&x, kernel);
        });
        assert!(msg.contains("input width"), "{msg}");
    }
    // interleaving needs one shape
    let other = PackedMatrix::pack(&random(n * (k + 1), 4), n, k + 1);
    let msg = panic_message(|| {
        GatedPair::new(&gate, &other);
    });
    assert!(msg.contains("one shape"), "{msg}");
}

#[test]
fn gated_product_fills_its_unzeroed_output_whole() {
    // row counts around the tile (12) and the 3-row two-panel calls, outputs across a
    // partial last panel: every value written (the same bits as the separate route)
    let (n, k) = (2 * 32 + 7, 48);
    let gate = PackedMatrix::pack(&random(n * k, 5), n, k);
    let up = PackedMatrix::pack(&random(n * k, 6), n, k);
    let pair = GatedPair::new(&gate, &up);
    for m in [1, 3, 4, 13] {
        let x = random(m * k, 7 + m as u64);
        for kernel in [Kernel::Auto, Kernel::Portable] {
            let y = pair.product(&x, kernel);
            assert_eq!(y.len(), m * n);
            let (g, u) = (
                gemm::matmul(&gate, &x, kernel),
                gemm::matmul(&up, &x, kernel),
            );
            let mut separate = vec![0f32; m * n];
            silu_mul_slices(&g, &u, &mut separate);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&separate), "m={m} {kernel:?}");
        }
    }
}

#[test]
fn quantized_activations_need_whole_blocks_and_rows() {
    let x = random(2 * 64, 1);
    for kernel in [Kernel::Auto, Kernel::Portable] {
        // columns no multiple of 32
        let msg = panic_message(|| {
            QActs::quantize_with(&x, 48, kernel);
        });
        assert!(msg.contains("multiple of 32"), "{msg}");
        // values no whole number of rows
        let msg = panic_message(|| {
            QActs::quantize_with(&x[..100], 64, kernel);
        });
        assert!(msg.contains("not rows of 64"), "{msg}");
        // zero columns
        let msg = panic_message(|| {
            QActs::quantize_with(&[], 0, kernel);
        });
        assert!(msg.contains("positive multiple"), "{msg}");
        // whole rows of whole blocks work, on both kernels alike
        let a = QActs::quantize_with(&x, 64, kernel);
        assert_eq!(a.dequantize().len(), x.len());
    }
}

#[test]
fn quantized_product_checks_the_input_width() {
    let (n, k) = (20, 64);
    let w = QMatrix::quantize(QKind::Q4, &random(n * k, 1), n, k).unwrap();
    for kernel in [Kernel::Auto, Kernel::Portable] {
        let x = random(2 * k + 32, 2);
        let msg = panic_message(|| {
            quant::matmul(&w, &x, kernel);
        });
        assert!(msg.contains("input width"), "{msg}");
        // whole rows: every output written
        let y = quant::matmul(&w, &x[..2 * k], kernel);
        assert_eq!(y.len(), 2 * n);
        assert!(y.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn quantized_matrices_refuse_what_the_kernels_cannot_read() {
    // columns no multiple of 32, no rows, data of the wrong length: errors, not matrices
    assert!(QMatrix::quantize(QKind::Q8, &random(4 * 40, 1), 4, 40).is_err());
    assert!(QMatrix::quantize(QKind::Q8, &[], 0, 32).is_err());
    assert!(QMatrix::quantize(QKind::Q4, &random(4 * 32 - 1, 1), 4, 32).is_err());
    use candle_core::quantized::GgmlDType;
    // Q8_0 stores 34 bytes per 32 values: one byte short is refused
    let short = vec![0u8; 2 * 34 - 1];
    assert!(QMatrix::from_ggml(GgmlDType::Q8_0, &short, 1, 64, None).is_err());
}

fn tensor(v: Vec<f32>, shape: (usize, usize, usize, usize)) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn attention_refuses_mismatched_or_strided_inputs() {
    let (b, heads, kvh, t, d) = (1, 4, 2, 5, 8);
    let q = tensor(random(b * heads * t * d, 1), (b, heads, t, d));
    let k = tensor(random(b * kvh * t * d, 2), (b, kvh, t, d));
    let v = tensor(random(b * kvh * t * d, 3), (b, kvh, t, d));
    let vis = Visibility {
        offset: 0,
        causal: true,
        window: None,
    };
    let kernel = Kernel::Auto;
    assert!(prefill_attention(&q, &k, &v, vis, kernel).is_ok());
    // key width differs from the queries'
    let k9 = tensor(random(b * kvh * t * 9, 4), (b, kvh, t, 9));
    assert!(prefill_attention(&q, &k9, &k9, vis, kernel).is_err());
    // values of another shape than the keys
    let v4 = tensor(random(b * kvh * 4 * d, 5), (b, kvh, 4, d));
    assert!(prefill_attention(&q, &k, &v4, vis, kernel).is_err());
    // query heads no multiple of the kv heads
    let k3 = tensor(random(b * 3 * t * d, 6), (b, 3, t, d));
    assert!(prefill_attention(&q, &k3, &k3, vis, kernel).is_err());
    // keys whose rows are not contiguous
    let strided = tensor(random(b * kvh * t * 2 * d, 7), (b, kvh, t, 2 * d))
        .narrow(3, 0, d)
        .unwrap();
    assert!(prefill_attention(&q, &strided, &strided, vis, kernel).is_err());
    // a decode step with the same mistakes
    let q1 = tensor(random(b * heads * d, 8), (b, heads, 1, d));
    assert!(decode_attention(&q1, &k, &v, 0, Kernel::Auto).is_ok());
    assert!(decode_attention(&q1, &k9, &k9, 0, Kernel::Auto).is_err());
    assert!(decode_attention(&q1, &k, &v4, 0, Kernel::Auto).is_err());
    assert!(decode_attention(&q1, &strided, &strided, 0, Kernel::Auto).is_err());
    assert!(
        decode_attention(&q, &k, &v, 0, Kernel::Auto).is_err(),
        "5 query positions"
    );
}

#[test]
fn attention_with_zero_width_heads_is_empty() {
    let (b, heads, kvh, t) = (1, 2, 1, 3);
    let q = tensor(vec![], (b, heads, t, 0));
    let k = tensor(vec![], (b, kvh, t, 0));
    let vis = Visibility {
        offset: 0,
        causal: true,
        window: None,
    };
    let y = prefill_attention(&q, &k, &k, vis, Kernel::Auto).unwrap();
    assert_eq!(y.dims(), &[b, t, 0]);
    let q1 = tensor(vec![], (b, heads, 1, 0));
    let y = decode_attention(&q1, &k, &k, 0, Kernel::Auto).unwrap();
    assert_eq!(y.dims(), &[b, heads, 1, 0]);
}
