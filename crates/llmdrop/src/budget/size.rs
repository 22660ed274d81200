//! Byte sizes as people write them: `200MiB`, `4GiB`, `1.5G`, `123456`.

use crate::error::{Error, Result};

/// Parses a byte size: a number (decimals allowed) and an optional unit, `B`, `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB`, `T`/`TiB` (powers of 1024), or `KB`, `MB`, `GB`, `TB` (powers of
/// 1000), case-insensitive, with or without a space between.
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = |reason: &str| Error::Argument {
        option: "max_memory",
        reason: format!("`{s}` is not a size: {reason} (e.g. 200MiB, 4GiB, 1500000000)"),
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad("no number"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(bad("unknown unit")),
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 1.0 || bytes >= u64::MAX as f64 {
        return Err(bad("out of range"));
    }
    Ok(bytes as u64)
}

/// `bytes` for people: `1.5 GiB`, `200.0 MiB`, `512 B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!(parse_size("200MiB").unwrap(), 200 << 20);
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("4 g").unwrap(), 4 << 30);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("123456").unwrap(), 123456);
        for bad in ["", "MiB", "12 parsecs", "0", "-5M", "1e400G", "1..2M"] {
            let e = parse_size(bad).unwrap_err();
            assert!(matches!(e, Error::Argument { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes_format_for_people() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(200 << 20), "200.0 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
    }
}
