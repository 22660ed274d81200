//! Serde for `f64` values that JSON must give back exactly: finite values as plain JSON
//! numbers (so files written before this existed still read), NaN and the infinities as
//! the strings `"NaN"`, `"inf"` and `"-inf"` (JSON has no literal for them: serde_json
//! alone writes `null` and then cannot read it back as a number). `null`, which earlier
//! versions wrote for any non-finite value, reads back as NaN. Use with
//! `#[serde(with = "crate::json_f64")]`, or the [`mod@vec`] and [`opt_matrix`]
//! modules for collections.

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

    pub fn serialize<S: Serializer>(v: &Option<Vec<Vec<f64>>>, s: S) -> Result<S::Ok, S::Error> {
        let rows = v.as_ref().map(|m| {
            m.iter()
                .map(|r| r.iter().map(|&x| F64(x)).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        });
        rows.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Vec<f64>>>, D::Error> {
        let rows = Option::<Vec<Vec<F64>>>::deserialize(d)?;
        Ok(rows.map(|m| {
            m.into_iter()
                .map(|r| r.into_iter().map(|x| x.0).collect())
                .collect()
        }))
    }
}
