//! `--stream` and `--max-memory`: whether scoring (perplexity) holds the model or streams its layers,
//! and the memory it may use.

use clap::Args;
use llmdrop::budget::{parse_size, MemoryPolicy};

#[derive(Args, Debug, Clone)]
pub struct MemoryArgs {
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// Where layer-streamed scoring spills the unit hidden states of the consecutive-layer
    /// matrix (every layer of every calibration token; the size is said before it starts
    /// and checked against the free space) and keeps its checkpoint: a private folder made
    /// inside DIR, removed once the scores are written (a stopped run leaves its
    /// checkpoint there for the rerun; with --no-checkpoint it goes on error or Ctrl-C
    /// too). Default: the folder of --out.
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<std::path::PathBuf>,
}

/// `--stream` and `--max-memory` alone (perplexity and evaluation spill nothing).
#[derive(Args, Debug, Clone)]
pub struct BudgetArgs {
    /// Stream the layers: every calibration block (perplexity window, multiple-choice
    /// example) passes through layer i before layer i+1 is read, so memory holds one layer
    /// and the hidden states instead of the model; the output head is read in slices of the
    /// vocabulary. The scores (perplexity, log-likelihoods) are the same, bit for bit.
    #[arg(long)]
    pub stream: bool,
    /// The memory the run may use, e.g. 200MiB, 4GiB (default: the memory available less
    /// 1/8). The layers are streamed when the model would not fit; less than streaming
    /// needs is an error that says how much it needs.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub max_memory: Option<u64>,
}

impl MemoryArgs {
    pub fn policy(&self) -> MemoryPolicy {
        self.budget.policy()
    }
}

impl BudgetArgs {
    pub fn policy(&self) -> MemoryPolicy {
        MemoryPolicy {
            stream: self.stream,
            max_memory: self.max_memory,
        }
    }
}

fn size(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| match e {
        llmdrop::Error::Argument { reason, .. } => reason,
        e => e.to_string(),
    })
}
