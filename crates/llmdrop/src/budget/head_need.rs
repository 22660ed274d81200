//! What the output head holds: whole, beside the model held in memory, or read a slice
//! of the vocabulary at a time after the layers streamed (with one unit's logits of the
//! slice and every scored position's running sums).

use candle_core::DType;

use super::need::{held_bytes, held_bytes_as};
use crate::io::source::ModelSource;
use crate::quant::Precision;

const EMBED: &str = "model.embed_tokens.weight";

/// The vocabulary rows a streamed head is read in at least, unless the budget holds no
/// group with that many (fewer only when the vocabulary is smaller): a slice's product
/// spreads its panels of rows over the threads.
pub const MIN_HEAD_ROWS: u64 = 256;

/// Slices are cut at multiples of this many rows (the packed kernels' panel height),
/// unless one slice holds the whole vocabulary; the fewest rows a tight budget allows.
const ROW_STEP: u64 = 32;

/// Bytes each scored position keeps while the head runs (its running sums, target and
/// position; checked against the type in `eval::log_softmax`).
pub const SCORE_BYTES: u64 = 64;

/// The output head's parts, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HeadNeed {
    /// The projection as held (the whole embedding matrix when tied), with the final norm.
    pub whole: u64,
    /// One vocabulary row of the projection as held.
    pub row: u64,
    /// One row while it is read and converted: as held, the dense f32 copy it is packed
    /// from, and its stored bytes.
    pub row_load: u64,
    /// The final norm.
    pub norm: u64,
    /// Rows in the vocabulary.
    pub vocab: u64,
    /// Rows held at once when streamed.
    pub rows: u64,
    /// The embedding table as a load for hidden states holds it (in [`super::ScoreNeed`]'s
    /// `model`).
    pub scoring_embed: u64,
    /// The embedding table and the projection as a load for logits holds them.
    pub logits_model: u64,
    /// One embedding row as a load for logits holds it (the rows a streamed pass reads).
    pub embed_row: u64,
    /// Whether the head may be read in slices (else it is held whole).
    pub sliceable: bool,
}

impl HeadNeed {
    /// The head of `src` at `precision`, whole.
    pub fn estimate(src: &ModelSource, precision: Precision) -> Self {
        let c = src.config();
        let w = src.weights();
        let tensors = w.tensors();
        let meta = |name: &str| tensors.iter().find(|t| t.name == name);
        let held = |name: &str, head: bool| {
            meta(name).map_or(0, |t| {
                held_bytes_as(&t.shape, t.bytes, w.ggml_type(name), precision, head)
            })
        };
        let stored = |name: &str| meta(name).map_or(0, |t| t.bytes);
        // scoring's load keeps a GGUF table as stored in f32; the logits load does not
        let scoring_embed = meta(EMBED).map_or(0, |t| {
            let h = held_bytes(&t.shape, t.bytes, w.ggml_type(EMBED), precision);
            match (precision.compute_dtype(), w.ggml_type(EMBED)) {
                (DType::F32, Some(_)) => h.min(t.bytes),
                _ => h,
            }
        });
        let name = match c.tie_word_embeddings {
            true => EMBED,
            false => "lm_head.weight",
        };
        let projection = held(name, true);
        let norm = held("model.norm.weight", false);
        let vocab = (c.vocab_size as u64).max(1);
        let row = projection.div_ceil(vocab);
        Self {
            whole: projection + norm,
            row,
            row_load: row + c.hidden_size as u64 * 4 + stored(name).div_ceil(vocab),
            norm,
            vocab,
            rows: vocab,
            scoring_embed,
            logits_model: held(EMBED, true) + if c.tie_word_embeddings { 0 } else { projection },
            embed_row: held(EMBED, true).div_ceil(vocab),
            sliceable: crate::model::can_slice(w, c, precision),
        }
    }

    /// The rows a slice holds at least when the budget allows it.
    pub fn min_rows(&self) -> u64 {
        match self.sliceable {
            true => self.vocab.min(MIN_HEAD_ROWS),
            false => self.vocab,
        }
    }

    /// The fewest rows a slice may hold.
    pub fn least_rows(&self) -> u64 {
        match self.sliceable {
            true => self.vocab.min(ROW_STEP),
            false => self.vocab,
        }
    }

    /// One row of a slice: while it loads, or held with a unit of `unit_rows` positions'
    /// logits of it.
    fn per_row(&self, unit_rows: u64) -> u64 {
        self.row_load.max(self.row + unit_rows * 4)
    }

    /// The head's bytes with `positions` positions scored, one unit of `unit_rows`
    /// positions' logits at a time: the norm, the scores, and `rows` rows.
    pub fn bytes(&self, positions: u64, unit_rows: u64) -> u64 {
        self.norm + positions * SCORE_BYTES + self.rows * self.per_row(unit_rows)
    }

    /// The most rows (at least [`HeadNeed::least_rows`], whole panels below the vocabulary)
    /// that `room` bytes hold beside the norm and scores already counted.
    pub fn rows_within(&self, room: u64, unit_rows: u64) -> u64 {
        let rows = room / self.per_row(unit_rows).max(1);
        if rows >= self.vocab || !self.sliceable {
            return self.vocab;
        }
        let whole_panels = match rows >= ROW_STEP {
            true => rows / ROW_STEP * ROW_STEP,
            false => rows,
        };
        whole_panels.max(self.least_rows())
    }

    /// What the head phase holds, for people: `then …`.
    pub fn detail(&self, positions: u64, unit_rows: u64, unit: &str) -> String {
        use super::format_size as s;
        let scores = format!(
            "the final norm {} and {positions} positions' scores {}",
            s(self.norm),
            s(positions * SCORE_BYTES)
        );
        if self.rows >= self.vocab {
            return format!(
                "the whole output head {} with {unit} logits {}, {scores}",
                s(self.rows * self.row),
                s(self.rows * unit_rows * 4),
            );
        }
        format!(
            "the output head in slices of {} of {} vocabulary rows ({} held, {} while one loads) with {unit} logits of a slice {}, {scores}",
            self.rows,
            self.vocab,
            s(self.rows * self.row),
            s(self.rows * self.row_load),
            s(self.rows * unit_rows * 4),
        )
    }
}

/// The most units (of `n`) whose streamed run fits, each unit count `g` checked by
/// `fits(g, rows)` with the head read `rows` rows at a time: [`HeadNeed::min_rows`] when
/// some group fits with them, else [`HeadNeed::least_rows`]; 1 when none fits (the need
/// then says what streaming needs at least). The need grows with `g`.
pub(super) fn largest_group(n: u64, head: &HeadNeed, fits: impl Fn(u64, u64) -> bool) -> u64 {
    let most = |rows: u64| {
        if !fits(1, rows) {
            return None;
        }
        let (mut lo, mut hi) = (1, n.max(1));
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            match fits(mid, rows) {
                true => lo = mid,
                false => hi = mid - 1,
            }
        }
        Some(lo)
    };
    most(head.min_rows())
        .or_else(|| most(head.least_rows()))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> HeadNeed {
        HeadNeed {
            whole: 100_000,
            row: 100,
            row_load: 300,
            norm: 10,
            vocab: 1000,
            rows: 1000,
            scoring_embed: 0,
            logits_model: 0,
            embed_row: 0,
            sliceable: true,
        }
    }

    #[test]
    fn slices_are_whole_panels_that_fit_the_room() {
        let h = head();
        // a row costs max(300 while loading, 100 + 4 per logit of the unit)
        assert_eq!(h.rows_within(300 * 1000, 10), 1000);
        assert_eq!(h.rows_within(300 * 999, 10), 992);
        assert_eq!(h.rows_within(300 * 40, 10), 32);
        assert_eq!(h.rows_within(0, 10), 32);
        assert_eq!(h.rows_within(500 * 64, 100), 64);
        let mut sliced = h;
        sliced.rows = 64;
        // norm, 5 positions' scores, 64 rows at 500
        assert_eq!(sliced.bytes(5, 100), 10 + 5 * SCORE_BYTES + 64 * 500);
        assert!(sliced
            .detail(5, 100, "one window's")
            .contains("slices of 64 of 1000"));
        assert!(h
            .detail(5, 100, "one window's")
            .contains("the whole output head"));
        // a dense head is held whole
        let dense = HeadNeed {
            sliceable: false,
            ..h
        };
        assert_eq!(dense.rows_within(0, 10), 1000);
        assert_eq!((dense.min_rows(), dense.least_rows()), (1000, 1000));
    }

    #[test]
    fn groups_keep_a_useful_slice_before_the_least_one() {
        let h = head();
        // a group of g fits when g * 10 + rows <= budget
        let fits = |budget: u64| move |g: u64, rows: u64| g * 10 + rows <= budget;
        assert_eq!(largest_group(100, &h, fits(300)), 4);
        assert_eq!(largest_group(100, &h, fits(100)), 6);
        assert_eq!(largest_group(100, &h, fits(10)), 1);
        assert_eq!(largest_group(3, &h, fits(10_000)), 3);
    }
}
