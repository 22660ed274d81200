//! `log_softmax(row)[target]` of a row of logits, computed from slices of the row: the
//! perplexity and multiple-choice scores of both the in-memory and the layer-streamed
//! paths go through [`RowScore`], the streamed head seeing the vocabulary a slice at a
//! time, the in-memory one the whole row as one slice. The operations and their order
//! do not depend on where the slices are cut, so every path gives the same bits.
//!
//! What is computed, in f64 from the f32 logits `x` of a row of `V` values:
//!
//! ```text
//! m   = fold(-inf, f32::max) over x[0..V]      (pass 1, slices in column order)
//! s   = fold(0, s + exp(x[j] - m)) over j < V  (pass 2, slices in column order)
//! out = x[target] - m - ln(s)
//! ```
//!
//! A running maximum cannot give these sums in one pass (rescaling a partial sum to a new
//! maximum rounds differently), so a sliced head is read twice: once for the maxima, once
//! for the sums.

/// One scored position: which token, and what the passes have seen of its row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowScore {
    target: usize,
    max: f32,
    sum: f64,
    target_logit: f32,
    /// The first column holding the row's largest value (as `generate::argmax` finds
    /// it), and that value.
    best: (usize, f32),
}

impl RowScore {
    pub fn new(target: usize) -> Self {
        Self {
            target,
            max: f32::NEG_INFINITY,
            sum: 0.0,
            target_logit: f32::NAN,
            best: (0, f32::NAN),
        }
    }

    /// Pass 1: the values of some columns (each slice once, in column order).
    pub fn see_max(&mut self, values: &[f32]) {
        self.max = values.iter().copied().fold(self.max, f32::max);
    }

    /// Pass 2, after pass 1 saw every column: the values of columns `start..`, each
    /// slice once, in column order.
    pub fn see_sum(&mut self, start: usize, values: &[f32]) {
        let m = self.max as f64;
        self.sum = values
            .iter()
            .fold(self.sum, |s, &x| s + (x as f64 - m).exp());
        if let Some(&t) = self.target.checked_sub(start).and_then(|i| values.get(i)) {
            self.target_logit = t;
        }
        for (j, &x) in values.iter().enumerate() {
            // column 0 starts the search; later columns win only when strictly larger
            if start + j == 0 || x > self.best.1 {
                self.best = (start + j, x);
            }
        }
    }

    /// `log_softmax(row)[target]` once both passes saw the whole row.
    pub fn log_prob(&self) -> f64 {
        self.target_logit as f64 - self.max as f64 - self.sum.ln()
    }

    /// Whether the target is the row's first largest value (greedy decoding's choice).
    pub fn greedy(&self) -> bool {
        self.best.0 == self.target
    }
}

/// `log_softmax(row)[i]`, accumulated in f64 (the whole row as one slice).
pub fn log_softmax_at(row: &[f32], i: usize) -> f64 {
    whole_row(row, i).log_prob()
}

/// Both passes over a whole row.
pub(crate) fn whole_row(row: &[f32], target: usize) -> RowScore {
    let mut r = RowScore::new(target);
    r.see_max(row);
    r.see_sum(0, row);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formula as written before slices: max fold, then `Iterator::sum`.
    fn reference(row: &[f32], i: usize) -> f64 {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
        row[i] as f64 - max - sum.ln()
    }

    fn row(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s % 20_000) as f32 - 10_000.0) / 311.0
            })
            .collect()
    }

    #[test]
    fn the_memory_estimate_counts_a_scored_position_in_full() {
        let each = std::mem::size_of::<RowScore>() + std::mem::size_of::<(usize, u32)>();
        assert!(each as u64 <= crate::budget::SCORE_BYTES, "{each}");
    }

    #[test]
    fn log_softmax_matches_definition() {
        let row = [1.0f32, 2.0, 3.0];
        let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        let want = (2.0f64).exp().ln() - z.ln();
        assert!((log_softmax_at(&row, 1) - want).abs() < 1e-12);
    }

    #[test]
    fn any_slicing_gives_the_whole_rows_bits_and_argmax() {
        for (n, seed) in [(1, 3), (7, 5), (333, 9), (1000, 11)] {
            let r = row(n, seed);
            for target in [0, n / 2, n - 1] {
                let want = reference(&r, target);
                assert_eq!(log_softmax_at(&r, target).to_bits(), want.to_bits());
                let greedy = crate::generate::argmax(&r) as usize == target;
                for width in [1, 2, 5, 32, 64, n] {
                    let mut s = RowScore::new(target);
                    r.chunks(width).for_each(|c| s.see_max(c));
                    for (k, c) in r.chunks(width).enumerate() {
                        s.see_sum(k * width, c);
                    }
                    assert_eq!(s.log_prob().to_bits(), want.to_bits(), "{n} {width}");
                    assert_eq!(s.greedy(), greedy, "{n} {width}");
                }
            }
        }
    }

    #[test]
    fn ties_and_special_values_follow_the_whole_row() {
        let rows: [&[f32]; 4] = [
            &[2.0, 5.0, 5.0, 1.0],
            &[f32::NAN, 1.0, 3.0],
            &[0.0, f32::INFINITY, 1.0],
            &[f32::NEG_INFINITY, f32::NEG_INFINITY],
        ];
        for r in rows {
            for t in 0..r.len() {
                let mut s = RowScore::new(t);
                r.chunks(1).for_each(|c| s.see_max(c));
                r.chunks(1).enumerate().for_each(|(k, c)| s.see_sum(k, c));
                assert_eq!(s.log_prob().to_bits(), reference(r, t).to_bits(), "{r:?}");
                assert_eq!(s.greedy(), crate::generate::argmax(r) as usize == t);
            }
        }
    }
}
