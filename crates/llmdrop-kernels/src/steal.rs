//! CPU time the hypervisor gave to other guests: on a shared virtual machine a run's
//! threads can be runnable and still not run (Linux counts that time as `steal` in
//! `/proc/stat`), so a speed figure is read against the share of the CPU the run had.

/// The machine's CPU time counters (all CPUs, in clock ticks) at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Every state's ticks, steal included.
    pub total: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// This machine's counters now; None where `/proc/stat` cannot be read or parsed.
    pub fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The counters of the aggregate `cpu` line of a `/proc/stat` text: user, nice, system,
    /// idle, iowait, irq, softirq, steal (guest time is already inside user and nice).
    pub fn parse(stat: &str) -> Option<Self> {
        let line = stat
            .lines()
            .find(|l| l.split_whitespace().next() == Some("cpu"))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        (v.len() >= 4).then(|| Self {
            total: v.iter().sum(),
            steal: v.get(7).copied().unwrap_or(0),
        })
    }

    /// The share of the machine's CPU time from `self` to `later` that was stolen (0 to 1;
    /// 0 when not a tick passed); None when the counters went backwards.
    pub fn stolen_until(&self, later: &CpuTimes) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        let steal = later.steal.checked_sub(self.steal)?;
        Some(steal.min(total) as f64 / total.max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_counter_of_the_cpu_line() {
        let a =
            CpuTimes::parse("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n").unwrap();
        assert_eq!((a.total, a.steal), (1000, 40));
        let b = CpuTimes::parse("cpu  160 0 60 900 10 0 0 70 0 0\n").unwrap();
        // 200 ticks passed, 30 of them stolen
        assert_eq!(a.stolen_until(&b), Some(0.15));
        assert_eq!(a.stolen_until(&a), Some(0.0));
        assert_eq!(b.stolen_until(&a), None);
        // an old kernel without a steal column, and lines that are not the aggregate
        assert_eq!(CpuTimes::parse("cpu 1 2 3 4\n").map(|c| c.steal), Some(0));
        assert_eq!(CpuTimes::parse("cpu0 1 2 3 4\nintr 5\n"), None);
        assert_eq!(CpuTimes::parse("cpu x y z\n"), None);
    }
}
