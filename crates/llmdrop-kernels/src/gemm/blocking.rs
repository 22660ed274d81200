//! [`Blocking`]: how the packed f32 kernels cut a product into cache-sized pieces, chosen
//! from the caches of the machine they run on.

use std::sync::OnceLock;

use super::kernel::{MC, MR};
use super::packed::NR;
use super::tile::SUM_BLOCK;
use crate::machine::Machine;

/// The input chunk (`kc` values of every row) and the row block (`mc` rows) a product
/// with more rows than one tile is cut into. Any blocking gives the same bits: chunks are
/// whole [`SUM_BLOCK`]s of the input ([`Blocking::chunk`]), so every output is the same
/// blocks' chains added in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    pub kc: usize,
    pub mc: usize,
}

/// The chunk when the L2 size is unknown: a quarter of a 1 MiB L2.
const KC_DEFAULT: usize = 2048;

impl Blocking {
    /// The input chunk products use: `kc` rounded up to whole [`SUM_BLOCK`]s.
    pub fn chunk(self) -> usize {
        self.kc.max(1).next_multiple_of(SUM_BLOCK)
    }

    /// The blocking for a core whose L2 holds `l2_bytes` (None: unknown).
    ///
    /// A tile streams its panel chunk (`kc · NR` f32) from L2 while the row block's
    /// activations stay there too. Measured: streaming a whole panel from L2 is fastest
    /// while the chunk is at most a quarter of L2 — cutting it to fit L1 was slower on a
    /// Zen 5 (48 KiB L1d, 1 MiB L2) and no faster on an Intel Xeon (48 KiB L1d, 2 MiB L2;
    /// `cargo run --release -p llmdrop-kernels --example blocking` sweeps the choices) —
    /// so the chunk is the largest multiple of 256 values within L2 / 4.
    pub fn for_l2(l2_bytes: Option<u64>) -> Self {
        let kc = l2_bytes.map_or(KC_DEFAULT, |l2| {
            let values = (l2 / 4) as usize / (NR * std::mem::size_of::<f32>());
            (values / 256 * 256).clamp(256, 16 * 1024)
        });
        Self { kc, mc: MC }
    }

    /// The blocking of this process: from this machine's L2 ([`Machine::detect`]), or
    /// `LLMDROP_GEMM_KC` / `LLMDROP_GEMM_MC` where set (for measurements).
    pub fn get() -> Self {
        static B: OnceLock<Blocking> = OnceLock::new();
        *B.get_or_init(|| {
            let var = |name: &str| std::env::var(name).ok()?.parse::<usize>().ok();
            let b = Self::for_l2(Machine::detect().data_cache_bytes(2));
            Self {
                kc: var("LLMDROP_GEMM_KC").filter(|&k| k > 0).unwrap_or(b.kc),
                mc: var("LLMDROP_GEMM_MC").map_or(b.mc, |m| m.div_ceil(MR).max(1) * MR),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_follows_the_l2_size() {
        // Zen 5: 1 MiB -> 256 KiB of panel = 2048 inputs (the chunk tuned there)
        assert_eq!(Blocking::for_l2(Some(1 << 20)).kc, 2048);
        // Intel Xeon, 2 MiB
        assert_eq!(Blocking::for_l2(Some(2 << 20)).kc, 4096);
        assert_eq!(Blocking::for_l2(None).kc, 2048);
        // tiny or odd caches stay within bounds and on multiples of 256
        assert_eq!(Blocking::for_l2(Some(64 << 10)).kc, 256);
        assert_eq!(Blocking::for_l2(Some(1_250_000)).kc, 2304);
        assert_eq!(Blocking::for_l2(Some(1 << 30)).kc, 16 * 1024);
    }
}
