//! [`Blocking`]: how the packed f32 kernels cut a product into cache-sized pieces and
//! kernel calls, chosen from the caches and the cores of the machine they run on.

use std::sync::OnceLock;

use super::kernel::{MC, MR};
use super::packed::NR;
use super::tile::SUM_BLOCK;
use super::tune::{self, ChosenBy, TileChoice};
use crate::machine::Machine;
use crate::Kernel;

/// The input chunk (`kc` values of every row), the row block (`mc` rows) and the kernel
/// call ([`Shape`]) a product with more rows than one tile is cut into. Any blocking gives
/// the same bits: chunks are whole [`SUM_BLOCK`]s of the input ([`Blocking::chunk`]), so
/// every output is the same blocks' chains added in the same order, whichever call
/// computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    pub kc: usize,
    pub mc: usize,
    pub shape: Shape,
}

/// The outputs one kernel call keeps in registers when a product has more than 3 rows:
/// 24 sums of 16 lanes either way, fed by different loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// [`MR`] = 12 activation rows × one panel of [`NR`] outputs. Per input step: 2
    /// weight loads, 12 broadcasts from 12 row addresses, 24 multiply-adds. 85% of the FMA
    /// limit on a Zen 5.
    Rows12,
    /// 6 rows × two panels. Per step: 4 weight loads, 6 broadcasts, 24 multiply-adds: 10
    /// loads instead of 14 and half the address arithmetic, for twice the weight traffic
    /// from cache, two panels streamed side by side. On an Intel Xeon both shapes ran a
    /// product whose weights stay in cache at ~85% of the FMA limit, but with each
    /// layer's weights coming from memory (as in a forward pass) this one was 4-11%
    /// faster, and whole-model scoring 8% (which of its differences buys that is not
    /// settled).
    Rows6,
}

impl Shape {
    /// Activation rows per call.
    pub fn rows(self) -> usize {
        match self {
            Shape::Rows12 => MR,
            Shape::Rows6 => MR / 2,
        }
    }

    /// Panels of [`NR`] outputs per call.
    pub fn panels(self) -> usize {
        match self {
            Shape::Rows12 => 1,
            Shape::Rows6 => 2,
        }
    }

    /// The shape for a CPU from `vendor` (`/proc/cpuinfo`'s `vendor_id`), where the probe
    /// ([`tune::measure`]) finds the two calls within its margin or has no AVX-512 kernel
    /// to time: the one measured faster on that vendor's CPUs here. Intel:
    /// [`Shape::Rows6`]; elsewhere (AMD, whose Zen 5 ran [`Shape::Rows12`] at 85% of the
    /// limit in place, and unknown CPUs) [`Shape::Rows12`]. `cargo run --release -p
    /// llmdrop-kernels --example shapes` compares the two on whole forward-pass products.
    pub fn for_vendor(vendor: Option<&str>) -> Self {
        match vendor {
            Some("GenuineIntel") => Shape::Rows6,
            _ => Shape::Rows12,
        }
    }

    /// Activation rows per pass over a panel chunk (a multiple of [`MR`]), measured with
    /// the call: 384 for [`Shape::Rows12`] (tuned on a Zen 5). With
    /// [`Shape::Rows6`] on an Intel Xeon, a 512-position product ran 2-6% faster in one
    /// row block than in 384 + 128 rows (the second block reads every weight panel again
    /// from memory for only 128 rows), and 1024 positions ran the same in blocks of 384 or
    /// 1032 (`--example shapes ROUNDS POSITIONS`): so 1032.
    pub fn row_block(self) -> usize {
        match self {
            Shape::Rows12 => MC,
            Shape::Rows6 => 86 * MR,
        }
    }

    /// The name `LLMDROP_GEMM_TILE` takes: `12x1` or `6x2` (rows × panels).
    pub fn name(self) -> &'static str {
        match self {
            Shape::Rows12 => "12x1",
            Shape::Rows6 => "6x2",
        }
    }

    /// The shape [`Shape::name`] names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "12x1" => Some(Shape::Rows12),
            "6x2" => Some(Shape::Rows6),
            _ => None,
        }
    }
}

/// The chunk when the L2 size is unknown: a quarter of a 1 MiB L2.
const KC_DEFAULT: usize = 2048;

impl Blocking {
    /// The input chunk products use: `kc` rounded up to whole [`SUM_BLOCK`]s.
    pub fn chunk(self) -> usize {
        self.kc.max(1).next_multiple_of(SUM_BLOCK)
    }

    /// The blocking for a core whose L2 holds `l2_bytes` (None: unknown) and a call of
    /// `shape`.
    ///
    /// A tile streams its panel chunk (`kc · NR` f32 per panel) from L2 while the row block's
    /// activations stay there too. Measured: streaming a whole panel from L2 is fastest
    /// while the chunk is at most a quarter of L2 — cutting it to fit L1 was slower on a
    /// Zen 5 (48 KiB L1d, 1 MiB L2) and no faster on an Intel Xeon (48 KiB L1d, 2 MiB L2;
    /// `cargo run --release -p llmdrop-kernels --example blocking` sweeps the choices) —
    /// so the chunks of the call's panels are the largest multiple of 256 inputs within
    /// L2 / 4.
    pub fn for_l2(l2_bytes: Option<u64>, shape: Shape) -> Self {
        let kc = l2_bytes.map_or(KC_DEFAULT / shape.panels(), |l2| {
            let values = (l2 / 4) as usize / (shape.panels() * NR * std::mem::size_of::<f32>());
            (values / 256 * 256).clamp(256, 16 * 1024)
        });
        Self {
            kc,
            mc: shape.row_block(),
            shape,
        }
    }

    /// The blocking of this process ([`Blocking::chosen`]).
    pub fn get() -> Self {
        Self::chosen().0
    }

    /// The blocking of this process and how its call was chosen, decided on the first
    /// call: the chunk from this machine's L2 ([`Machine::detect`]); the call named by
    /// `LLMDROP_GEMM_TILE` (`12x1`, `6x2`) where set, else the faster on this core
    /// ([`tune::measure`], ~25 ms, once), else (no AVX-512 kernel to time) the vendor's;
    /// `LLMDROP_GEMM_KC` / `LLMDROP_GEMM_MC` where set (for measurements).
    pub fn chosen() -> (Self, TileChoice) {
        *CHOSEN.get_or_init(|| {
            // a setting that does not parse counts as unset here (see `env_error`)
            let env = EnvSettings::read();
            let machine = Machine::detect();
            let l2 = machine.data_cache_bytes(2);
            let vendor = Shape::for_vendor(machine.vendor.as_deref());
            let (shape, chosen_by, ratio) = match env.tile.ok().flatten() {
                Some(s) => (s, ChosenBy::Env, None),
                None if Kernel::Auto.avx512f() => {
                    let r = tune::measure(Kernel::Auto, l2);
                    (tune::decide(r, vendor), ChosenBy::Measured, Some(r))
                }
                None => (vendor, ChosenBy::Vendor, None),
            };
            let b = Self::for_l2(l2, shape);
            let b = Self {
                kc: env.kc.ok().flatten().unwrap_or(b.kc),
                mc: env.mc.ok().flatten().map_or(b.mc, |m| m.div_ceil(MR) * MR),
                shape,
            };
            let choice = TileChoice {
                tile: shape.name(),
                chosen_by,
                rows12_over_rows6: ratio,
                kc: b.chunk(),
                mc: b.mc,
            };
            (b, choice)
        })
    }

    /// What is wrong with the measurement settings in the environment, if anything:
    /// `LLMDROP_GEMM_TILE` that names no call, `LLMDROP_GEMM_KC` / `LLMDROP_GEMM_MC` that
    /// are no whole number from 1 to [`MAX_SETTING`] (empty values count as unset).
    /// [`Blocking::chosen`] ignores such a value; a caller that would rather refuse it (the
    /// CLI: a run meant to measure one setting must not quietly measure another) asks here
    /// first.
    pub fn env_error() -> Option<String> {
        let env = EnvSettings::read();
        env.tile.err().or(env.kc.err()).or(env.mc.err())
    }

    /// How this process's call was chosen, if a product has chosen it yet (never starts
    /// the measurement).
    pub fn choice() -> Option<TileChoice> {
        CHOSEN.get().map(|c| c.1)
    }
}

/// The largest `LLMDROP_GEMM_KC` / `LLMDROP_GEMM_MC` taken (inputs per chunk, rows per
/// block): far past any cache, and small enough that rounding it up to whole blocks or
/// tiles cannot overflow.
pub const MAX_SETTING: usize = 1 << 24;

/// The measurement settings in the environment, each unset (`Ok(None)`; an empty value
/// counts as unset, as in `LLMDROP_GEMM_TILE= llmdrop …`), taken, or refused with a message.
struct EnvSettings {
    tile: Result<Option<Shape>, String>,
    kc: Result<Option<usize>, String>,
    mc: Result<Option<usize>, String>,
}

impl EnvSettings {
    fn read() -> Self {
        let size = |s: &str| {
            s.parse::<usize>()
                .ok()
                .filter(|v| (1..=MAX_SETTING).contains(v))
        };
        let sizes = format!("not a whole number from 1 to {MAX_SETTING}");
        Self {
            tile: env_setting(
                "LLMDROP_GEMM_TILE",
                Shape::parse,
                "no such call (the calls: 12x1, 6x2)",
            ),
            kc: env_setting("LLMDROP_GEMM_KC", size, &sizes),
            mc: env_setting("LLMDROP_GEMM_MC", size, &sizes),
        }
    }
}

/// The environment variable `name` read with `parse`: unset or empty is `Ok(None)`, a
/// value `parse` refuses is `Err("NAME=value: {refused}")`.
fn env_setting<T>(
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    refused: &str,
) -> Result<Option<T>, String> {
    let Some(v) = std::env::var_os(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    v.to_str()
        .and_then(parse)
        .map(Some)
        .ok_or_else(|| format!("{name}={}: {refused}", v.to_string_lossy()))
}

/// This process's blocking, once chosen.
static CHOSEN: OnceLock<(Blocking, TileChoice)> = OnceLock::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_follows_the_l2_size() {
        let kc = |l2, shape| Blocking::for_l2(l2, shape).kc;
        // Zen 5: 1 MiB -> 256 KiB of panel = 2048 inputs (the chunk tuned there)
        assert_eq!(kc(Some(1 << 20), Shape::Rows12), 2048);
        // Intel Xeon, 2 MiB: two panels share the quarter
        assert_eq!(kc(Some(2 << 20), Shape::Rows12), 4096);
        assert_eq!(kc(Some(2 << 20), Shape::Rows6), 2048);
        assert_eq!(kc(None, Shape::Rows12), 2048);
        assert_eq!(kc(None, Shape::Rows6), 1024);
        // tiny or odd caches stay within bounds and on multiples of 256
        assert_eq!(kc(Some(64 << 10), Shape::Rows12), 256);
        assert_eq!(kc(Some(64 << 10), Shape::Rows6), 256);
        assert_eq!(kc(Some(1_250_000), Shape::Rows12), 2304);
        assert_eq!(kc(Some(1 << 30), Shape::Rows12), 16 * 1024);
    }

    #[test]
    fn the_call_follows_the_vendor() {
        assert_eq!(Shape::for_vendor(Some("GenuineIntel")), Shape::Rows6);
        assert_eq!(Shape::for_vendor(Some("AuthenticAMD")), Shape::Rows12);
        assert_eq!(Shape::for_vendor(None), Shape::Rows12);
        for shape in [Shape::Rows12, Shape::Rows6] {
            // 24 sums of 16 lanes: two per panel and row
            assert_eq!(shape.rows() * shape.panels() * 2, 24);
            assert_eq!(MC % shape.rows(), 0);
            assert_eq!(shape.row_block() % MR, 0);
            assert_eq!(Blocking::for_l2(None, shape).mc, shape.row_block());
        }
        assert_eq!(Shape::parse("6x2"), Some(Shape::Rows6));
        assert_eq!(Shape::parse("12x1"), Some(Shape::Rows12));
        assert_eq!(Shape::parse("8x3"), None);
        for shape in [Shape::Rows12, Shape::Rows6] {
            assert_eq!(Shape::parse(shape.name()), Some(shape));
        }
    }
}
