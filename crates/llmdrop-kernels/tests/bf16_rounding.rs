//! The rounding of activations (and of f32 weights) to bf16: nearest, ties to even, as
//! PyTorch's CPU `c10::BFloat16` (hand-checked cases).

use llmdrop_kernels::gemm::bf16::round;

#[test]
fn rounding_to_bf16_is_nearest_even() {
    let cases: [(f32, u16); 14] = [
        (1.0, 0x3f80),
        // 1 + 2^-8 lies halfway between 0x3f80 and 0x3f81: to the even 0x3f80
        (1.0 + 2f32.powi(-8), 0x3f80),
        // 1 + 3·2^-8 halfway between 0x3f81 and 0x3f82: to the even 0x3f82
        (1.0 + 3.0 * 2f32.powi(-8), 0x3f82),
        // just above the tie: up
        (1.0 + 2f32.powi(-8) + 2f32.powi(-23), 0x3f81),
        (-(1.0 + 3.0 * 2f32.powi(-8)), 0xbf82),
        (-0.0, 0x8000),
        // the largest f32 is past the largest bf16's rounding range: +∞
        (f32::MAX, 0x7f80),
        (f32::INFINITY, 0x7f80),
        (f32::NEG_INFINITY, 0xff80),
        // subnormals round like any number: the largest ones up to the smallest normal
        (f32::from_bits(0x007f_8000), 0x0080),
        (f32::from_bits(0x0000_8000), 0x0000),
        (f32::from_bits(0x0001_8000), 0x0002),
        // any NaN, negative or signalling: the quiet NaN 0x7fc0 (as PyTorch)
        (f32::from_bits(0xff80_0001), 0x7fc0),
        (f32::NAN, 0x7fc0),
    ];
    for (x, want) in cases {
        assert_eq!(
            round(x).to_bits(),
            want,
            "{x:e} ({:08x}) -> {:04x}, want {want:04x}",
            x.to_bits(),
            round(x).to_bits()
        );
    }
}
