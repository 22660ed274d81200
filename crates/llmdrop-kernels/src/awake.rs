//! The pool's other threads held awake through a run of short parallel sections.
//!
//! A decode step is a few hundred parallel sections of tens of microseconds each, with
//! short serial stretches between. rayon's idle workers yield for a few dozen rounds and
//! then sleep, and the thread that posts the next section pays a futex wake-up (a VM exit
//! where the CPUs are virtual) while the woken worker arrives late: on a 2-core Intel
//! Xeon VM, 13-18% of a 2-thread decode's samples were spent waking threads. [`hold`] runs
//! a closure with every other thread of the pool polling for work (rayon's own
//! `yield_now`, which runs whatever job it finds) until the closure returns, so sections
//! start on both cores without a wake-up. Nothing changes what any section computes.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Set while this thread runs a [`hold`]'s closure (nested holds are plain calls).
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// Idle polls between two yields of the CPU to the OS (a neighbour that needs the core
/// gets it within a few microseconds).
const SPINS_PER_YIELD: u32 = 64;

/// Runs `f` on a thread of the pool (this one, or one of the global pool's when called
/// from outside it, this thread waiting) while the pool's other threads poll for its
/// parallel work. A plain call on a pool of one thread or inside another `hold`.
pub fn hold<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_none() {
        return rayon::scope(|_| hold(f));
    }
    if rayon::current_num_threads() <= 1 || HOLDING.get() {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        for _ in 1..rayon::current_num_threads() {
            s.spawn(|_| poll(&done));
        }
        // the pollers stop however `f` ends (a panic too), or the scope would wait forever
        let _release = Release(&done);
        HOLDING.set(true);
        let _unset = Unset;
        f()
    })
}

/// Runs the pool's pending jobs until `done`. Returns at once on a thread that holds a
/// pass of its own, the one that spawned this poller among them: it meets pollers in the
/// queues while it waits inside a section, and polling there would stop its own pass
/// until the other one ended. (A thread steals the oldest job of a queue first, and the
/// pollers are a pass's oldest jobs: no thread runs one above a job of the same pass.)
fn poll(done: &AtomicBool) {
    if HOLDING.get() {
        return;
    }
    let mut idle = 0u32;
    while !done.load(Ordering::Acquire) {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => idle = 0,
            _ => {
                idle += 1;
                if idle.is_multiple_of(SPINS_PER_YIELD) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

struct Release<'a>(&'a AtomicBool);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

struct Unset;

impl Drop for Unset {
    fn drop(&mut self) {
        HOLDING.set(false);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use rayon::prelude::*;

    use super::*;

    #[test]
    fn sections_inside_a_hold_run_and_end() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let sum = pool.install(|| {
            hold(|| {
                (0..200)
                    .map(|i| (0..1000u64).into_par_iter().map(|j| j * i).sum::<u64>())
                    .sum::<u64>()
            })
        });
        assert_eq!(sum, (0..200u64).sum::<u64>() * (0..1000u64).sum::<u64>());
        // nested and on one thread: plain calls; from outside any pool: in the global one
        assert_eq!(pool.install(|| hold(|| hold(|| 7))), 7);
        assert!(hold(|| rayon::current_thread_index().is_some()));
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(one.install(|| hold(|| 9)), 9);
    }

    /// Two passes held side by side (scoring runs one calibration block per thread): a
    /// thread waiting inside its own pass may meet the other's poller in the queue, and
    /// must not poll there (it would hold its own pass until the other ended, and the
    /// other thread might do the same: neither would end).
    #[test]
    fn passes_held_side_by_side_both_end() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let pass = |seed: u64| {
            hold(|| {
                (0..300u64)
                    .map(|i| {
                        (0..2000u64)
                            .into_par_iter()
                            .map(|j| (j ^ seed) * i)
                            .sum::<u64>()
                    })
                    .sum::<u64>()
            })
        };
        let want = |seed: u64| {
            (0..300u64)
                .map(|i| (0..2000u64).map(|j| (j ^ seed) * i).sum::<u64>())
                .sum::<u64>()
        };
        for round in 0..30u64 {
            let (a, b) = pool.install(|| rayon::join(|| pass(round), || pass(round + 1)));
            assert_eq!((a, b), (want(round), want(round + 1)));
        }
    }

    #[test]
    fn a_panic_inside_releases_the_pollers() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let ran = AtomicUsize::new(0);
        let r = pool.install(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                hold(|| {
                    ran.fetch_add(1, Ordering::Relaxed);
                    panic!("inside");
                })
            }))
        });
        assert!(r.is_err());
        assert_eq!(ran.load(Ordering::Relaxed), 1);
        // the pool still works, and a later hold is not nested
        assert!(pool.install(|| hold(|| HOLDING.get())));
        assert!(!pool.install(|| HOLDING.get()));
    }
}
