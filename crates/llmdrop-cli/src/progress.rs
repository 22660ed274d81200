//! Progress bars on stderr, only when it is a terminal and output is not JSON.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use llmdrop::progress::Progress;

pub struct Bars {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Bars {
    pub fn new(json: bool) -> Self {
        Self {
            enabled: !json && std::io::stderr().is_terminal(),
            bar: None,
        }
    }
}

impl Progress for Bars {
    fn start(&mut self, label: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_message(label.to_string());
        self.bar = Some(b);
    }

    fn advance(&mut self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
