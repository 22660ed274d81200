//! `scores.json`: a score table with everything needed to know when it can be reused.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::score::ScoreTable;

/// Current `scores.json` schema.
pub const SCORES_SCHEMA: u32 = 1;

/// What the scores depend on besides the model and the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreSettings {
    pub samples: usize,
    pub seq_len: usize,
    pub shuffle: bool,
    pub seed: u64,
    pub residual: bool,
    pub dtype: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreReport {
    pub schema_version: u32,
    pub llmdrop_version: String,
    pub model_path: String,
    pub model_sha256: String,
    pub data_path: String,
    /// sha256 of the exact calibration token blocks.
    pub data_sha256: String,
    pub settings: ScoreSettings,
    pub threads: usize,
    #[serde(with = "json_f64")]
    pub seconds: f64,
    #[serde(with = "json_f64")]
    pub tokens_per_sec: f64,
    /// Forward-pass arithmetic per second (see `bench::forward_flops`).
    #[serde(default, with = "json_f64")]
    pub gflops_per_sec: f64,
    /// Peak resident memory of the scoring process.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
    pub table: ScoreTable,
}

impl ScoreReport {
    /// Whether this report was computed from the same model, data and settings.
    pub fn matches(&self, model_sha256: &str, data_sha256: &str, settings: &ScoreSettings) -> bool {
        self.schema_version == SCORES_SCHEMA
            && self.model_sha256 == model_sha256
            && self.data_sha256 == data_sha256
            && &self.settings == settings
    }

    /// Reads a report [`ScoreReport::write`] wrote (every value as written, NaN and the
    /// infinities included); its table must be whole.
    pub fn read(path: &Path) -> Result<Self> {
        let text = crate::io::text::read_utf8_limited(path, crate::io::text::MAX_JSON_BYTES)?;
        let r: Self = serde_json::from_str(&text)
            .map_err(|e| Error::Input(format!("{}: not a scores file: {e}", path.display())))?;
        r.table
            .validate()
            .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
        Ok(r)
    }

    /// Writes the report through staging. An existing file at `path` is replaced only when
    /// it is a scores file llmdrop wrote; `path` may not overlap `inputs`.
    pub fn write(&self, path: &Path, inputs: &crate::dest::Inputs) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Input(e.to_string()))?;
        crate::dest::write_file(path, crate::dest::Kind::ScoresFile, inputs, text.as_bytes())
    }
}

/// Serde for `f64` values that JSON must give back exactly: finite values as plain JSON
/// numbers (so files written before this existed still read), NaN and the infinities as
/// the strings `"NaN"`, `"inf"` and `"-inf"` (JSON has no literal for them: serde_json
/// alone writes `null` and then cannot read it back as a number). `null`, which earlier
/// versions wrote for any non-finite value, reads back as NaN. Use with
/// `#[serde(with = "json_f64")]`, or the [`json_f64::vec`] and [`json_f64::opt_matrix`]
/// modules for collections.
pub mod json_f64 {
    use std::fmt;

    use serde::de::{self, Deserializer, Visitor};
    use serde::{Deserialize, Serialize, Serializer};

    /// One `f64` that serializes as described in [the module](self).
    #[derive(Debug, Clone, Copy)]
    pub struct F64(pub f64);

    impl Serialize for F64 {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let v = self.0;
            if v.is_finite() {
                s.serialize_f64(v)
            } else if v.is_nan() {
                s.serialize_str("NaN")
            } else if v > 0.0 {
                s.serialize_str("inf")
            } else {
                s.serialize_str("-inf")
            }
        }
    }

    struct F64Visitor;

    impl<'de> Visitor<'de> for F64Visitor {
        type Value = F64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(r#"a number, "NaN", "inf" or "-inf""#)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<F64, E> {
            Ok(F64(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<F64, E> {
            Ok(F64(v as f64))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<F64, E> {
            Ok(F64(v as f64))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<F64, E> {
            match v {
                "NaN" => Ok(F64(f64::NAN)),
                "inf" => Ok(F64(f64::INFINITY)),
                "-inf" => Ok(F64(f64::NEG_INFINITY)),
                _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<F64, E> {
            Ok(F64(f64::NAN))
        }
        fn visit_none<E: de::Error>(self) -> Result<F64, E> {
            Ok(F64(f64::NAN))
        }
    }

    impl<'de> Deserialize<'de> for F64 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(F64Visitor)
        }
    }

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        F64(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(F64::deserialize(d)?.0)
    }

    /// `Vec<f64>`.
    pub mod vec {
        use super::*;

        pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|&x| F64(x)))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            Ok(Vec::<F64>::deserialize(d)?
                .into_iter()
                .map(|x| x.0)
                .collect())
        }
    }

    /// `Option<Vec<Vec<f64>>>` (a ragged matrix, or none).
    pub mod opt_matrix {
        use super::*;

        pub fn serialize<S: Serializer>(
            v: &Option<Vec<Vec<f64>>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            let rows = v.as_ref().map(|m| {
                m.iter()
                    .map(|r| r.iter().map(|&x| F64(x)).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            });
            rows.serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Vec<Vec<f64>>>, D::Error> {
            let rows = Option::<Vec<Vec<F64>>>::deserialize(d)?;
            Ok(rows.map(|m| {
                m.into_iter()
                    .map(|r| r.into_iter().map(|x| x.0).collect())
                    .collect()
            }))
        }
    }
}
