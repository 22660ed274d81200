//! Progress reporting: the library calls a [`Progress`]; only the CLI draws bars.

/// Receives progress of long-running work.
pub trait Progress {
    /// A new phase with `total` steps.
    fn start(&mut self, _label: &str, _total: u64) {}
    /// A phase with `total` steps of which `done` were done by an earlier run (a resumed
    /// one): a bar starts there, and its rate counts this run's steps only.
    fn start_at(&mut self, label: &str, total: u64, done: u64) {
        self.start(label, total);
        if done > 0 {
            self.advance(done);
        }
    }
    /// `n` more steps done.
    fn advance(&mut self, _n: u64) {}
    /// The phase is over.
    fn finish(&mut self) {}
    /// Whether the caller asks the work to stop at its next safe point. Work that can stop
    /// cleanly asks between its steps: today layer-streamed scoring with a checkpoint,
    /// after each layer is saved; it then returns [`crate::Error::Cancelled`].
    fn cancelled(&self) -> bool {
        false
    }
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
