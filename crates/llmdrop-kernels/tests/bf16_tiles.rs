//! The rules of [`Order::Tiles`] (AMX's `tdpbf16ps`), checked by hand on cases where the
//! chain order gives other bits: even and odd inputs of a block in two chains, each block
//! of 32 inputs added to the running sum, the running sum starting at `+0`, and DAZ/FTZ.
//! The AMX kernel and the portable twin must both give them (on a CPU without AMX only the
//! twin runs, and the test says so on stderr).

use llmdrop_kernels::gemm::bf16::{matmul_in, Bf16Matrix, Order, BLOCK};
use llmdrop_kernels::{caps, Kernel};

/// `x` (`[m, k]`) times `w` (`[n, k]`, bf16-exact values) in the tiles order on both
/// kernels, which must give the same bits; those bits.
fn tiles(x: &[f32], w: &[f32], n: usize) -> Vec<u32> {
    if !caps().amx_bf16() {
        eprintln!("no AMX-BF16 tiles here: only the portable twin is checked");
    }
    let k = w.len() / n;
    let w = Bf16Matrix::from_f32(w, n, k).unwrap();
    let bits = |kernel| -> Vec<u32> {
        let y = matmul_in(&w, x, kernel, Order::Tiles).unwrap();
        y.iter().map(|v| v.to_bits()).collect()
    };
    let (auto, portable) = (bits(Kernel::Auto), bits(Kernel::Portable));
    assert_eq!(auto, portable, "AMX vs its portable twin");
    portable
}

/// The same product in the chain order (portable), for contrast.
fn chain(x: &[f32], w: &[f32], n: usize) -> Vec<u32> {
    let k = w.len() / n;
    let w = Bf16Matrix::from_f32(w, n, k).unwrap();
    let y = matmul_in(&w, x, Kernel::Portable, Order::Chain).unwrap();
    y.iter().map(|v| v.to_bits()).collect()
}

const ONE: u32 = 0x3f80_0000;

#[test]
fn a_block_sums_even_and_odd_inputs_in_two_chains() {
    let (u23, u24) = (2f32.powi(-23), 2f32.powi(-24));
    // even inputs 1 and 0, odd ones 2^-24 and 2^-24: the odd chain holds 2^-23 exactly,
    // then 1 + 2^-23. One chain rounds 1 + 2^-24 back to 1 twice (ties to even).
    let x = [1.0, u24, 0.0, u24];
    assert_eq!(tiles(&x, &[1.0; 4], 1), [ONE + 1]);
    assert_eq!(chain(&x, &[1.0; 4], 1), [ONE]);
    // within the even chain the order is kept: 1, then 2^-24 (a tie back to 1), then 2^-23
    let x = [1.0, 0.0, u24, 0.0, u23, 0.0];
    assert_eq!(tiles(&x, &[1.0; 6], 1), [ONE + 1]);
    // and a tie after 1 + 2^-23: to the even 1 + 2^-22
    let x = [1.0, 0.0, u23, 0.0, u24, 0.0];
    assert_eq!(tiles(&x, &[1.0; 6], 1), [ONE + 2]);
}

#[test]
fn each_block_of_32_inputs_is_added_to_the_running_sum() {
    let u24 = 2f32.powi(-24);
    let k = 4 * BLOCK;
    // block 0 holds 1, block 1 two 2^-24 (inputs 32 and 33): the block sums to 2^-23
    // before it meets the 1
    let mut x = vec![0f32; k];
    x[0] = 1.0;
    x[2 * BLOCK] = u24;
    x[2 * BLOCK + 1] = u24;
    assert_eq!(tiles(&x, &vec![1.0; k], 1), [ONE + 1]);
    assert_eq!(chain(&x, &vec![1.0; k], 1), [ONE]);
    // the same two values as inputs 30 and 31 (both in block 0, one even and one odd):
    // the odd chain holds 2^-24, the even one 1 + 2^-24 = 1, then 1 + 2^-24 = 1
    let mut x = vec![0f32; k];
    x[0] = 1.0;
    x[2 * BLOCK - 2] = u24;
    x[2 * BLOCK - 1] = u24;
    assert_eq!(tiles(&x, &vec![1.0; k], 1), [ONE]);
}

#[test]
fn tiny_results_flush_and_the_sum_starts_at_plus_zero() {
    let (min, p75, p76) = (f32::MIN_POSITIVE, 2f32.powi(-75), 2f32.powi(-76));
    // 2^-126 - 1.5·2^-151 in the even chain is tiny after rounding to 24 bits: +0; the tie
    // 2^-126 - 2^-151 rounds up to 2^-126
    let y = tiles(
        &[min, 0.0, p75, 0.0],
        &[1.0, 0.0, -1.5 * p76, 0.0, 1.0, 0.0, -p76, 0.0],
        2,
    );
    assert_eq!(y, [0, min.to_bits()]);
    // a tiny negative product flushes to -0, and -0 + +0 (the odd chain, then the running
    // sum from +0) is +0, with or without other blocks
    let t = 2f32.powi(-70);
    assert_eq!(tiles(&[t], &[-t], 1), [0]);
    assert_eq!(tiles(&[t, -1.0], &[-t, 0.0], 1), [0]);
    assert_eq!(chain(&[t, -1.0], &[-t, 0.0], 1), [(-0f32).to_bits()]);
    // a subnormal activation (1e-39 rounds to a bf16 subnormal) is read as zero
    assert_eq!(tiles(&[1e-39, 1.0], &[1.0, 0.0], 1), [0]);
}

#[test]
fn non_finite_inputs_give_non_finite_outputs_in_their_row_only() {
    let x = [[f32::INFINITY, 1.0], [1.0, 2.0], [f32::NAN, 1.0]].concat();
    let y = tiles(&x, &[1.0, 0.0, -1.0, 1.0], 2);
    let v: Vec<f32> = y.iter().map(|&b| f32::from_bits(b)).collect();
    assert_eq!(v[0], f32::INFINITY);
    assert!(!v[1].is_finite());
    assert_eq!(v[2..4], [1.0, 1.0]);
    assert!(!v[4].is_finite() && !v[5].is_finite());
}
