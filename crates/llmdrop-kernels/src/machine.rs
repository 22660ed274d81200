//! The machine a speed figure comes from: CPU model, cores and caches, read from the OS.
//!
//! Speed figures differ between CPUs of the same instruction set (the same kernel ran at
//! 85% of the FMA limit on one AVX-512 machine and ~50% on another), so every benchmark
//! names its machine. [`Machine::detect`] reads Linux's `/proc/cpuinfo` and
//! `/sys/devices/system/cpu/cpu0/cache`; elsewhere, or where a field cannot be read, the
//! field is `None` (never guessed). The FMA limit is a measurement, not a reading: see
//! [`crate::peak`].

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

/// One cache level as the OS reports it for CPU 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cache {
    /// 1, 2, 3.
    pub level: u8,
    /// `Data`, `Instruction` or `Unified`.
    pub kind: String,
    /// Size of one instance (the part CPU 0 uses), in bytes.
    pub size_bytes: u64,
    /// Logical CPUs sharing that instance.
    pub shared_by: usize,
}

/// The CPU and its caches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// `model name` (e.g. `AMD EPYC 9R45`; some hypervisors show only `AMD EPYC`).
    pub cpu_model: Option<String>,
    /// `vendor_id` (`AuthenticAMD`, `GenuineIntel`).
    pub vendor: Option<String>,
    pub family: Option<u32>,
    pub model: Option<u32>,
    pub stepping: Option<u32>,
    /// The core design the vendor, family and model name (`Zen 5`, `Sapphire Rapids`), where
    /// known: names the CPU when the model name does not.
    pub microarchitecture: Option<&'static str>,
    /// Logical CPUs the OS shows.
    pub logical_cpus: usize,
    /// Distinct (package, core) pairs; `None` where the OS does not say.
    pub physical_cores: Option<usize>,
    /// The caches CPU 0 uses, by level.
    pub caches: Vec<Cache>,
    /// The kernels' instruction sets this CPU has (see [`crate::Caps`]).
    pub kernel_features: Vec<&'static str>,
}

impl Machine {
    /// Reads this machine's description (Linux; elsewhere only the CPU count and features).
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let mut m = Self::from_cpuinfo(&cpuinfo);
        m.caches = read_caches(Path::new("/sys/devices/system/cpu/cpu0/cache"));
        if m.logical_cpus == 0 {
            m.logical_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        m
    }

    /// The CPU fields of `/proc/cpuinfo` text (caches empty).
    pub fn from_cpuinfo(text: &str) -> Self {
        let mut first: Vec<(&str, &str)> = Vec::new();
        let mut logical = 0;
        let mut cores = BTreeSet::new();
        let (mut package, mut core) = (None, None);
        for block in text.split("\n\n").filter(|b| b.contains("processor")) {
            logical += 1;
            for line in block.lines() {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let (k, v) = (k.trim(), v.trim());
                match k {
                    "physical id" => package = Some(v.to_string()),
                    "core id" => core = Some(v.to_string()),
                    _ => {}
                }
                if logical == 1 {
                    first.push((k, v));
                }
            }
            if let (Some(p), Some(c)) = (package.take(), core.take()) {
                cores.insert((p, c));
            }
        }
        let field = |name: &str| {
            first
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let number = |name: &str| field(name).and_then(|v| v.parse::<u32>().ok());
        let vendor = field("vendor_id");
        let (family, model) = (number("cpu family"), number("model"));
        let microarchitecture = match (vendor.as_deref(), family, model) {
            (Some(v), Some(f), Some(m)) => microarchitecture(v, f, m),
            _ => None,
        };
        Self {
            cpu_model: field("model name"),
            vendor,
            family,
            model,
            stepping: number("stepping"),
            microarchitecture,
            logical_cpus: logical,
            physical_cores: (!cores.is_empty()).then_some(cores.len()),
            caches: Vec::new(),
            kernel_features: kernel_features(crate::caps()),
        }
    }

    /// The size of one instance of the data (or unified) cache at `level`.
    pub fn data_cache_bytes(&self, level: u8) -> Option<u64> {
        self.caches
            .iter()
            .find(|c| c.level == level && c.kind != "Instruction")
            .map(|c| c.size_bytes)
    }

    /// One line for logs and reports: `AMD EPYC (Zen 5; family 26 model 2), 2 logical
    /// CPUs, L1d 48 KiB, L2 1 MiB, L3 32 MiB`.
    pub fn summary(&self) -> String {
        let mut s = self
            .cpu_model
            .clone()
            .unwrap_or_else(|| "unknown CPU".into());
        let mut id = Vec::new();
        if let Some(u) = self.microarchitecture {
            id.push(u.to_string());
        }
        if let (Some(f), Some(m)) = (self.family, self.model) {
            id.push(format!("family {f} model {m}"));
        }
        if !id.is_empty() {
            s += &format!(" ({})", id.join("; "));
        }
        s += &format!(", {} logical CPUs", self.logical_cpus);
        for c in self.caches.iter().filter(|c| c.kind != "Instruction") {
            let name = if c.kind == "Data" {
                format!("L{}d", c.level)
            } else {
                format!("L{}", c.level)
            };
            s += &format!(", {name} {}", size(c.size_bytes));
        }
        s
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

fn kernel_features(caps: crate::Caps) -> Vec<&'static str> {
    [
        (caps.avx2_fma(), "avx2+fma"),
        (caps.avx512f(), "avx512f"),
        (caps.avx512_vnni(), "avx512-vnni"),
        (caps.avx512_bf16(), "avx512-bf16"),
    ]
    .into_iter()
    .filter_map(|(has, name)| has.then_some(name))
    .collect()
}

/// The core design of the x86 CPUs with AVX-512 this project meets, by family and model.
fn microarchitecture(vendor: &str, family: u32, model: u32) -> Option<&'static str> {
    match (vendor, family, model) {
        ("AuthenticAMD", 25, 0x10..=0x1f | 0x60..=0x7f | 0xa0..=0xaf) => Some("Zen 4"),
        ("AuthenticAMD", 25, _) => Some("Zen 3"),
        ("AuthenticAMD", 26, _) => Some("Zen 5"),
        ("GenuineIntel", 6, 85) => Some("Skylake-SP / Cascade Lake"),
        ("GenuineIntel", 6, 106 | 108) => Some("Ice Lake-SP"),
        ("GenuineIntel", 6, 143) => Some("Sapphire Rapids"),
        ("GenuineIntel", 6, 207) => Some("Emerald Rapids"),
        ("GenuineIntel", 6, 173 | 174) => Some("Granite Rapids"),
        _ => None,
    }
}

/// The caches under `dir` (`index0`, `index1`, …), by level then kind.
fn read_caches(dir: &Path) -> Vec<Cache> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut caches: Vec<Cache> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|e| {
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok();
            Some(Cache {
                level: read("level")?.trim().parse().ok()?,
                kind: read("type")?.trim().to_string(),
                size_bytes: parse_size(read("size")?.trim())?,
                shared_by: read("shared_cpu_list").map_or(1, |l| count_cpus(l.trim())),
            })
        })
        .collect();
    caches.sort_by(|a, b| (a.level, &a.kind).cmp(&(b.level, &b.kind)));
    caches
}

/// `48K`, `1024K`, `32M` -> bytes.
fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// `0-3,8,10-11` -> 7.
fn count_cpus(list: &str) -> usize {
    list.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum::<usize>()
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CPUS: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\n\
model\t\t: 2\nmodel name\t: AMD EPYC\nstepping\t: 1\nphysical id\t: 0\ncore id\t\t: 0\n\n\
processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\n\
model name\t: AMD EPYC\nstepping\t: 1\nphysical id\t: 0\ncore id\t\t: 1\n\n";

    #[test]
    fn cpuinfo_fields_and_core_count() {
        let m = Machine::from_cpuinfo(TWO_CPUS);
        assert_eq!(m.cpu_model.as_deref(), Some("AMD EPYC"));
        assert_eq!(
            (m.family, m.model, m.stepping),
            (Some(26), Some(2), Some(1))
        );
        assert_eq!(m.microarchitecture, Some("Zen 5"));
        assert_eq!((m.logical_cpus, m.physical_cores), (2, Some(2)));
        assert!(m
            .summary()
            .starts_with("AMD EPYC (Zen 5; family 26 model 2), 2 logical"));
    }

    #[test]
    fn hyperthreads_share_a_core() {
        let smt = TWO_CPUS.replace("core id\t\t: 1", "core id\t\t: 0");
        assert_eq!(Machine::from_cpuinfo(&smt).physical_cores, Some(1));
    }

    #[test]
    fn unknown_or_empty_input_is_none_not_guessed() {
        let m = Machine::from_cpuinfo("");
        assert_eq!(
            (m.cpu_model, m.family, m.microarchitecture),
            (None, None, None)
        );
        assert_eq!(m.physical_cores, None);
        let intel = TWO_CPUS
            .replace("AuthenticAMD", "GenuineIntel")
            .replace(": 26", ": 6")
            .replace("model\t\t: 2", "model\t\t: 143");
        assert_eq!(
            Machine::from_cpuinfo(&intel).microarchitecture,
            Some("Sapphire Rapids")
        );
    }

    #[test]
    fn sizes_and_cpu_lists_parse() {
        assert_eq!(parse_size("48K"), Some(48 << 10));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        assert_eq!(parse_size("x"), None);
        assert_eq!(count_cpus("0-3,8,10-11"), 7);
        assert_eq!(count_cpus("0"), 1);
    }

    #[test]
    fn this_machine_reads_its_caches() {
        let m = Machine::detect();
        assert!(m.logical_cpus >= 1);
        if Path::new("/sys/devices/system/cpu/cpu0/cache/index0").exists() {
            assert!(m.data_cache_bytes(1).is_some_and(|b| b >= 8 << 10));
        }
    }
}
