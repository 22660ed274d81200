//! The scalar arithmetic the kernels share or reproduce: f32 → bf16 rounding, the pair
//! layout `vdpbf16ps` and the AMX tiles read, one multiply-add of either instruction and
//! the AMX tile's addition.

use half::bf16;

/// `x` rounded to the nearest bf16, ties to even, as PyTorch's CPU `c10::BFloat16` does:
/// a NaN becomes the quiet NaN `0x7FC0` whatever its sign and payload; every other value
/// (infinities, zeros, subnormals included) keeps its upper 16 bits after adding
/// `0x7FFF` plus the lowest kept bit, so a value past the largest bf16 becomes ±∞ and an
/// f32 subnormal rounds like any number (to a bf16 subnormal, ±0 or the smallest normal).
pub fn round(x: f32) -> bf16 {
    bf16::from_bits(round_bits(x))
}

/// [`round`] as bits, written without branches so that a loop of it vectorizes.
#[inline(always)]
pub(crate) fn round_bits(x: f32) -> u16 {
    let b = x.to_bits();
    // wrapping: only a NaN (discarded below) can carry past bit 31
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    let nan = (b & 0x7fff_ffff) > 0x7f80_0000;
    if nan {
        0x7fc0
    } else {
        rounded as u16
    }
}

/// Two bf16 values of consecutive inputs `k = 2p` (`first`) and `2p + 1` (`second`) as one
/// 32-bit lane of a `vdpbf16ps` operand. The instruction adds the product of the upper
/// halves before the lower ones, so `first` goes in the upper half: the sum then runs over
/// the inputs in ascending order.
#[inline(always)]
pub(crate) fn pair(first: u16, second: u16) -> u32 {
    (u32::from(first) << 16) | u32::from(second)
}

/// Values below this, once rounded to f32's 24 bits with an unbounded exponent, are
/// tiny: `2^-126 - 2^-151` (the midpoint between the smallest normal and the largest
/// 24-bit value under it; the tie rounds up, to the even smallest normal).
const TINY: f64 = f32::MIN_POSITIVE as f64 * (1.0 - 1.0 / (1u64 << 25) as f64);

/// A bf16 value (bits) as f64, a subnormal read as a zero of its sign (DAZ).
#[inline(always)]
fn widen(v: u16) -> f64 {
    let v = if v & 0x7f80 == 0 { v & 0x8000 } else { v };
    f64::from(f32::from_bits(u32::from(v) << 16))
}

/// `acc + x·w` as each half of `vdpbf16ps` computes it: a fused multiply-add rounded to
/// nearest even, subnormal inputs read as zeros of their sign (DAZ, the sum too), a tiny
/// result (below 2^-126 after rounding to 24 bits with an unbounded exponent) written as
/// a zero of its sign (FTZ, tininess after rounding). Intel's definition of the
/// instruction, and what AMD Zen 4 computes.
///
/// In f64: the product of two 8-bit significands is exact, and the sum of two values of
/// at most 24 significant bits rounded to 53 and then to 24 bits is rounded correctly
/// (53 ≥ 2·24 + 2), overflow to ±∞ included. A NaN comes out as a NaN whose payload may
/// differ from the instruction's.
#[inline]
pub(crate) fn mul_add(acc: f32, x: u16, w: u16) -> f32 {
    flush(f64::from(daz(acc)) + widen(x) * widen(w))
}

/// `a + b` as an AMX tile adds a block's two sums together and to the running sum: the
/// rules of [`mul_add`] (DAZ, nearest even, FTZ after rounding). In f64 as there: the sum
/// of two 24-bit values rounded to 53 bits, then to 24, is rounded correctly.
#[inline]
pub(crate) fn add(a: f32, b: f32) -> f32 {
    flush(f64::from(daz(a)) + f64::from(daz(b)))
}

/// A subnormal read as a zero of its sign.
#[inline(always)]
fn daz(v: f32) -> f32 {
    if v.is_subnormal() {
        0f32.copysign(v)
    } else {
        v
    }
}

/// `v` rounded to f32, a tiny result written as a zero of its sign.
#[inline(always)]
fn flush(v: f64) -> f32 {
    if v.abs() < TINY {
        if v.is_sign_negative() {
            -0.0
        } else {
            0.0
        }
    } else {
        v as f32
    }
}

/// One `vdpbf16ps` lane: `acc` plus the products of the two pairs' upper halves, then of
/// their lower halves, each rounded ([`mul_add`]).
#[inline]
pub(crate) fn dot_pair(acc: f32, x: u32, w: u32) -> f32 {
    let acc = mul_add(acc, (x >> 16) as u16, (w >> 16) as u16);
    mul_add(acc, x as u16, w as u16)
}

/// One block of an AMX tile's sum (`tdpbf16ps`) for one output: the upper halves of the
/// pairs `x[p]`, `w(p)` summed in one chain from `+0`, the lower halves in another, each
/// step a [`mul_add`]; then the two chains added, and that added to `acc` ([`add`]).
#[inline]
pub(crate) fn tile_block(acc: f32, x: &[u32], w: impl Fn(usize) -> u32) -> f32 {
    let (mut hi, mut lo) = (0f32, 0f32);
    for (p, &xp) in x.iter().enumerate() {
        let wp = w(p);
        hi = mul_add(hi, (xp >> 16) as u16, (wp >> 16) as u16);
        lo = mul_add(lo, xp as u16, wp as u16);
    }
    add(acc, add(hi, lo))
}

/// Rows of `cols` values each, rounded to bf16 and paired ([`pair`]): `cols.div_ceil(2)`
/// lanes a row, the last one's second value `+0` when `cols` is odd. `out` holds
/// `x.len() / cols` such rows.
#[inline(always)]
pub(crate) fn pairs_into(x: &[f32], cols: usize, out: &mut [u32]) {
    let kp = cols.div_ceil(2);
    for (row, dst) in x.chunks_exact(cols).zip(out.chunks_exact_mut(kp)) {
        let (whole, rest) = row.split_at(cols & !1);
        for (d, v) in dst.iter_mut().zip(whole.chunks_exact(2)) {
            *d = pair(round_bits(v[0]), round_bits(v[1]));
        }
        if let [last] = rest {
            dst[kp - 1] = pair(round_bits(*last), 0);
        }
    }
}

/// [`pairs_into`] into the AMX kernel's tile order: row `r`'s paired lanes, cut in runs
/// of `run` (lanes `b * run..`), go to `out[(r / rows * (lanes / run) + b) * rows * run + r
/// % rows * run..]`: groups of `rows` rows, each group's runs in turn, a run's `rows` rows
/// one after the other. `out` holds whole groups of `lanes` lanes a row; runs and rows
/// past the data are left as they are (`+0` in a zeroed `out`).
#[cfg(any(target_arch = "x86_64", test))]
#[inline(always)]
pub(crate) fn tile_pairs_into(
    x: &[f32],
    cols: usize,
    lanes: usize,
    (rows, run): (usize, usize),
    out: &mut [u32],
) {
    let group = lanes / run * rows * run;
    for (r, row) in x.chunks_exact(cols).enumerate() {
        let first = r / rows * group + r % rows * run;
        for (b, values) in row.chunks(2 * run).enumerate() {
            let at = first + b * rows * run;
            pairs_into(
                values,
                values.len(),
                &mut out[at..at + values.len().div_ceil(2)],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_is_the_midpoint_under_the_smallest_normal() {
        assert_eq!(TINY, 2f64.powi(-126) - 2f64.powi(-151));
        // the tie rounds up to the smallest normal, anything under it is flushed
        assert_eq!(
            mul_add(f32::MIN_POSITIVE, 0x1a00, 0x9980),
            f32::MIN_POSITIVE
        );
        assert_eq!(mul_add(f32::MIN_POSITIVE, 0x1a00, 0x99c0).to_bits(), 0);
    }

    #[test]
    fn pairs_put_the_first_input_high_and_pad_odd_rows() {
        let x = [1.0, 2.0, 3.0, -1.0, -2.0, -3.0];
        let mut out = [0u32; 4];
        pairs_into(&x, 3, &mut out);
        assert_eq!(out, [0x3f80_4000, 0x4040_0000, 0xbf80_c000, 0xc040_0000]);
    }

    #[test]
    fn tile_order_puts_each_run_of_a_row_where_its_group_and_block_say() {
        // 19 rows of 69 values: 35 lanes a row (the last half padding), 48 with the
        // padding lanes (3 runs of 16, the last holding 3 lanes), two groups of 16 rows,
        // the second holding 3
        let (m, cols, lanes, rows, run) = (19, 69, 48, 16, 16);
        let x: Vec<f32> = (0..m * cols).map(|i| i as f32 * 0.37 - 100.0).collect();
        let mut plain = vec![0u32; m * lanes];
        for (row, dst) in x.chunks_exact(cols).zip(plain.chunks_exact_mut(lanes)) {
            pairs_into(row, cols, &mut dst[..cols.div_ceil(2)]);
        }
        let mut tiled = vec![u32::MAX; 2 * 3 * rows * run];
        tile_pairs_into(&x, cols, lanes, (rows, run), &mut tiled);
        for r in 0..2 * rows {
            for lane in 0..lanes {
                let (b, l) = (lane / run, lane % run);
                let got = tiled[((r / rows) * 3 + b) * rows * run + (r % rows) * run + l];
                if r < m && lane < cols.div_ceil(2) {
                    assert_eq!(got, plain[r * lanes + lane], "row {r} lane {lane}");
                } else {
                    // padding lanes and missing rows are left as they were
                    assert_eq!(got, u32::MAX, "row {r} lane {lane}");
                }
            }
        }
    }
}
