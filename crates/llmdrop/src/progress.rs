//! Progress reporting: the library calls a [`Progress`]; only the CLI draws bars.

/// Receives progress of long-running work.
pub trait Progress {
    /// A new phase with `total` steps.
    fn start(&mut self, _label: &str, _total: u64) {}
    /// `n` more steps done.
    fn advance(&mut self, _n: u64) {}
    /// The phase is over.
    fn finish(&mut self) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
