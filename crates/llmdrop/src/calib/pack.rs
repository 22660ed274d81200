//! Packing as in the paper's pipeline: each document's tokens + EOS (no BOS), concatenated,
//! cut into blocks of `seq_len`, the first `samples` blocks (or a seeded random choice).
//! For a model whose tokenizer adds BOS (Gemma), a block is BOS + `seq_len - 1` tokens of
//! that stream: the model never sees a sequence without its BOS.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::hash::sha256_bytes;
use crate::io::tokenizer::Tokenizer;

#[derive(Debug, Clone, Serialize)]
pub struct PackOptions {
    pub seq_len: usize,
    pub samples: usize,
    /// Choose `samples` of all blocks at random (seeded) instead of the first ones.
    pub shuffle: bool,
    pub seed: u64,
}

/// Calibration token blocks, all `seq_len` long.
#[derive(Debug, Clone)]
pub struct CalibBlocks {
    pub blocks: Vec<Vec<u32>>,
    /// Blocks the whole text would give.
    pub available: usize,
    /// sha256 of the blocks' ids (u32 little-endian, in order).
    pub hash: String,
}

impl CalibBlocks {
    pub fn tokens(&self) -> usize {
        self.blocks.iter().map(Vec::len).sum()
    }
}

/// Tokenizes `docs`, packs them and picks the blocks.
pub fn pack(docs: &[String], tok: &Tokenizer, opts: &PackOptions) -> Result<CalibBlocks> {
    if opts.seq_len == 0 || opts.samples == 0 {
        let option = if opts.seq_len == 0 {
            "seq_len"
        } else {
            "samples"
        };
        return Err(Error::argument(option, "must be positive"));
    }
    let eos = *tok.eos.first().ok_or_else(|| {
        Error::unsupported(
            "the tokenizer",
            "has no end-of-sequence token to separate documents",
        )
    })?;
    let mut stream = Vec::new();
    for d in docs {
        stream.extend(tok.encode(d)?);
        stream.push(eos);
    }
    let bos = tok.sequence_bos();
    // stream tokens per block
    let n = opts.seq_len - bos.is_some() as usize;
    if n == 0 {
        return Err(Error::argument(
            "seq_len",
            "must be at least 2 for a model whose sequences start with BOS",
        ));
    }
    let available = stream.len() / n;
    if available == 0 {
        return Err(Error::NotEnough {
            what: "the calibration data".into(),
            reason: format!("gives {} tokens, fewer than one block of {n}", stream.len()),
        });
    }
    if available < opts.samples {
        return Err(Error::NotEnough {
            what: "the calibration data".into(),
            reason: format!(
                "gives only {available} blocks of {} tokens, {} requested",
                opts.seq_len, opts.samples
            ),
        });
    }
    let mut index: Vec<usize> = (0..available).collect();
    if opts.shuffle {
        index.shuffle(&mut rand::rngs::StdRng::seed_from_u64(opts.seed));
    }
    let blocks: Vec<Vec<u32>> = index[..opts.samples]
        .iter()
        .map(|&b| {
            bos.into_iter()
                .chain(stream[b * n..(b + 1) * n].iter().copied())
                .collect()
        })
        .collect();
    let bytes: Vec<u8> = blocks
        .iter()
        .flatten()
        .flat_map(|i| i.to_le_bytes())
        .collect();
    Ok(CalibBlocks {
        hash: sha256_bytes(&bytes),
        blocks,
        available,
    })
}
