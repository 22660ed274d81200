//! How much memory a run may use, and whether scoring holds the model or streams its
//! layers: `stream` forces layer-streamed scoring; otherwise the model is held when its
//! estimate fits the budget (`max_memory`, else the memory available less a margin), and
//! streamed when only that fits.

mod export_need;
mod head_need;
mod mc_need;
mod need;
mod ppl_need;
mod size;

pub use export_need::ExportNeed;
pub use head_need::{HeadNeed, MIN_HEAD_ROWS, SCORE_BYTES};
pub use mc_need::{McNeed, McPass};
pub use need::ScoreNeed;
pub use ppl_need::PplNeed;
pub use size::{format_size, parse_size};

use serde::Serialize;

use crate::error::{Error, Result};

/// How scoring runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreMode {
    /// Every layer loaded, then every block run through the model.
    InMemory,
    /// Every block through layer `i` before layer `i + 1` is read.
    Streamed,
}

impl ScoreMode {
    pub fn name(self) -> &'static str {
        match self {
            ScoreMode::InMemory => "in-memory",
            ScoreMode::Streamed => "layer-streamed",
        }
    }
}

/// What the caller allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryPolicy {
    /// Stream the layers whatever the budget.
    pub stream: bool,
    /// The budget in bytes; None: the memory available less a margin.
    pub max_memory: Option<u64>,
}

/// How a layer-streamed pass is cut to fit memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamShape {
    /// Sequences (perplexity windows, multiple-choice examples) through the layers at
    /// once; None: all of them.
    pub group: Option<usize>,
    /// Vocabulary rows of the output head held at once; None: the whole head.
    pub head_rows: Option<usize>,
}

/// The mode chosen, and the numbers it was chosen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MemoryChoice {
    pub mode: ScoreMode,
    /// The estimate of the chosen mode, bytes.
    pub need_bytes: u64,
    /// The budget it was held to; None where none was given and the available memory
    /// is unknown.
    pub budget_bytes: Option<u64>,
    /// Whether the mode was forced (`stream`).
    pub forced: bool,
    /// Bytes spilled to disk (layer-streamed: the unit hidden states of the
    /// consecutive-layer matrix); None when held.
    #[serde(default)]
    pub spill_bytes: Option<u64>,
}

/// The budget `policy` sets, and what set it.
pub fn budget(policy: &MemoryPolicy) -> Option<(u64, String)> {
    match policy.max_memory {
        Some(b) => Some((b, format!("`max_memory` ({})", format_size(b)))),
        None => available_bytes().map(|a| {
            let b = a - a / 8;
            let from = format!(
                "the memory available ({}) less 1/8 ({})",
                format_size(a),
                format_size(b)
            );
            (b, from)
        }),
    }
}

/// What a run holds in memory, held or layer-streamed, in bytes.
pub trait Need {
    fn in_memory(&self) -> u64;
    fn streamed(&self) -> u64;
    /// Bytes the layer-streamed run spills to disk.
    fn spill(&self) -> u64;
    /// Whether the layer-streamed run spills at all (else the choice names no spill).
    fn spills(&self) -> bool {
        true
    }
    /// What [`Need::streamed`] is made of, for people.
    fn streamed_detail(&self) -> String;
}

impl Need for ScoreNeed {
    fn in_memory(&self) -> u64 {
        ScoreNeed::in_memory(self)
    }
    fn streamed(&self) -> u64 {
        ScoreNeed::streamed(self)
    }
    fn spill(&self) -> u64 {
        ScoreNeed::spill(self)
    }
    fn streamed_detail(&self) -> String {
        ScoreNeed::streamed_detail(self)
    }
}

/// Several runs on one model (the tasks and the perplexity of an evaluation): held, the
/// most any of them holds beside the model; streamed, the most any holds.
pub struct Largest<'a>(pub Vec<&'a dyn Need>);

impl Largest<'_> {
    fn most(&self, f: impl Fn(&dyn Need) -> u64) -> Option<&dyn Need> {
        self.0.iter().copied().max_by_key(|n| f(*n))
    }
}

impl Need for Largest<'_> {
    fn in_memory(&self) -> u64 {
        self.most(|n| n.in_memory()).map_or(0, |n| n.in_memory())
    }
    fn streamed(&self) -> u64 {
        self.most(|n| n.streamed()).map_or(0, |n| n.streamed())
    }
    fn spill(&self) -> u64 {
        self.most(|n| n.spill()).map_or(0, |n| n.spill())
    }
    fn spills(&self) -> bool {
        self.0.iter().any(|n| n.spills())
    }
    fn streamed_detail(&self) -> String {
        self.most(|n| n.streamed())
            .map_or(String::new(), |n| n.streamed_detail())
    }
}

/// Chooses how to score within `policy`: held when it fits (and `stream` is off),
/// streamed when only that fits, else an error naming what streaming needs.
pub fn choose(need: &impl Need, policy: &MemoryPolicy) -> Result<MemoryChoice> {
    let budget = budget(policy);
    let fits = |n: u64| budget.as_ref().is_none_or(|(b, _)| n <= *b);
    let choice = |mode: ScoreMode, need_bytes| MemoryChoice {
        mode,
        need_bytes,
        budget_bytes: budget.as_ref().map(|(b, _)| *b),
        forced: policy.stream,
        spill_bytes: (mode == ScoreMode::Streamed && need.spills()).then(|| need.spill()),
    };
    if !policy.stream && fits(need.in_memory()) {
        return Ok(choice(ScoreMode::InMemory, need.in_memory()));
    }
    if fits(need.streamed()) {
        return Ok(choice(ScoreMode::Streamed, need.streamed()));
    }
    let (b, from) = budget.expect("an unknown budget fits everything");
    Err(Error::MemoryBudget {
        need: need.streamed(),
        budget: b,
        budget_from: from,
        detail: need.streamed_detail(),
    })
}

/// `MemAvailable` of /proc/meminfo in bytes (None where there is none).
pub fn available_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need() -> ScoreNeed {
        ScoreNeed {
            model: 1000,
            layer: 100,
            load_extra: 50,
            embed_rows: 10,
            block_states: 5,
            block_units: 20,
            layer_units: 4,
            block_working: 30,
            blocks: 4,
            lanes: 2,
        }
    }

    #[test]
    fn held_when_it_fits_streamed_when_only_that_fits() {
        let n = need();
        // running: 100 + 10 + 4 * 5 + 2 * (30 + 4); after: 20
        assert_eq!((n.in_memory(), n.streamed(), n.spill()), (1110, 198, 80));
        // the read-back block when it outweighs the run
        let wide = ScoreNeed {
            block_units: 500,
            ..n
        };
        assert_eq!(wide.streamed(), 500);
        // a held load's peak is its largest tensor's read when that outweighs the blocks
        let big_tensor = ScoreNeed {
            load_extra: 200,
            ..n
        };
        assert_eq!(big_tensor.in_memory(), 1200);
        let pick = |stream, max| {
            choose(
                &n,
                &MemoryPolicy {
                    stream,
                    max_memory: Some(max),
                },
            )
        };
        assert_eq!(pick(false, 1110).unwrap().mode, ScoreMode::InMemory);
        let s = pick(false, 1109).unwrap();
        assert_eq!(
            (s.mode, s.need_bytes, s.budget_bytes),
            (ScoreMode::Streamed, 198, Some(1109))
        );
        assert_eq!(s.spill_bytes, Some(80));
        assert_eq!(pick(false, 1110).unwrap().spill_bytes, None);
        assert_eq!(pick(true, 5000).unwrap().mode, ScoreMode::Streamed);
        match pick(false, 197).unwrap_err() {
            Error::MemoryBudget { need, budget, .. } => assert_eq!((need, budget), (198, 197)),
            e => panic!("{e}"),
        }
    }
}
