//! Multiple-choice tasks: every example is a set of (context, continuation) requests, one
//! per choice, and the index of the correct one.

use serde::Serialize;

/// One multiple-choice example.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McExample {
    /// One (context, continuation) per choice. Usually the context is shared and the
    /// continuations are `" " + choice`; WinoGrande-style tasks vary the context instead.
    pub requests: Vec<(String, String)>,
    /// The choice strings, whose character counts normalise `acc_norm`.
    pub choices: Vec<String>,
    pub gold: usize,
}

/// A named list of examples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub name: String,
    pub examples: Vec<McExample>,
}

impl Task {
    /// Prepends `shots` solved examples of the task itself (never the example at hand),
    /// drawn with a seeded generator, each `context + gold continuation`, separated by a
    /// blank line, as lm-eval builds few-shot prompts.
    pub fn with_fewshot(&self, shots: usize, seed: u64) -> Task {
        use rand::seq::index::sample;
        use rand::SeedableRng;
        if shots == 0 || self.examples.len() < 2 {
            return self.clone();
        }
        let k = shots.min(self.examples.len() - 1);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let examples = self
            .examples
            .iter()
            .enumerate()
            .map(|(i, ex)| {
                let picks: Vec<usize> = sample(&mut rng, self.examples.len() - 1, k)
                    .into_iter()
                    .map(|j| if j >= i { j + 1 } else { j })
                    .collect();
                let mut prefix = String::new();
                for j in picks {
                    let s = &self.examples[j];
                    let (c, cont) = &s.requests[s.gold];
                    prefix.push_str(c);
                    prefix.push_str(cont);
                    prefix.push_str("\n\n");
                }
                McExample {
                    requests: ex
                        .requests
                        .iter()
                        .map(|(c, cont)| (format!("{prefix}{c}"), cont.clone()))
                        .collect(),
                    choices: ex.choices.clone(),
                    gold: ex.gold,
                }
            })
            .collect();
        Task {
            name: format!("{} ({shots}-shot)", self.name),
            examples,
        }
    }

    /// Expected accuracy of uniform guessing.
    pub fn chance(&self) -> f64 {
        if self.examples.is_empty() {
            return 0.0;
        }
        self.examples
            .iter()
            .map(|e| 1.0 / e.requests.len() as f64)
            .sum::<f64>()
            / self.examples.len() as f64
    }
}

impl McExample {
    /// The usual shape: one context (trailing spaces removed), each choice as continuation
    /// with one leading space.
    pub fn shared_context(context: &str, choices: Vec<String>, gold: usize) -> Self {
        let context = context.trim_end_matches(' ');
        let requests = choices
            .iter()
            .map(|c| (context.to_string(), format!(" {}", c.trim_start())))
            .collect();
        Self {
            requests,
            choices,
            gold,
        }
    }
}
