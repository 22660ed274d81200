//! Typed reads of GGUF metadata values (a missing key or another type is None).

use candle_core::quantized::gguf_file::{Content, Value};

pub(crate) fn meta_str(c: &Content, key: &str) -> Option<String> {
    match c.metadata.get(key)? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

pub(crate) fn meta_u64(c: &Content, key: &str) -> Option<u64> {
    let v = c.metadata.get(key)?;
    match v {
        Value::U8(x) => Some(*x as u64),
        Value::U16(x) => Some(*x as u64),
        Value::U32(x) => Some(*x as u64),
        Value::U64(x) => Some(*x),
        Value::I8(x) if *x >= 0 => Some(*x as u64),
        Value::I16(x) if *x >= 0 => Some(*x as u64),
        Value::I32(x) if *x >= 0 => Some(*x as u64),
        Value::I64(x) if *x >= 0 => Some(*x as u64),
        _ => None,
    }
}

/// A per-layer array of non-negative integers (None: missing, a scalar, or other values).
pub(crate) fn meta_per_layer(c: &Content, key: &str) -> Option<Vec<u64>> {
    match c.metadata.get(key)? {
        Value::Array(a) => {
            let v: Vec<u64> = a
                .iter()
                .filter_map(|x| match x {
                    Value::U32(x) => Some(*x as u64),
                    Value::I32(x) if *x >= 0 => Some(*x as u64),
                    Value::U64(x) => Some(*x),
                    Value::I64(x) if *x >= 0 => Some(*x as u64),
                    _ => None,
                })
                .collect();
            (v.len() == a.len()).then_some(v)
        }
        _ => None,
    }
}

/// A scalar, or the one non-zero value of a per-layer array (deci); None if missing or
/// the non-zero entries differ.
pub(crate) fn meta_uniform(c: &Content, key: &str) -> Option<u64> {
    match c.metadata.get(key)? {
        Value::Array(_) => {
            let v = meta_per_layer(c, key)?;
            let mut nz = v.into_iter().filter(|&x| x != 0);
            let first = nz.next()?;
            nz.all(|x| x == first).then_some(first)
        }
        _ => meta_u64(c, key),
    }
}

pub(crate) fn meta_f64(c: &Content, key: &str) -> Option<f64> {
    match c.metadata.get(key)? {
        Value::F32(x) => Some(*x as f64),
        Value::F64(x) => Some(*x),
        _ => None,
    }
}

pub(crate) fn meta_bool(c: &Content, key: &str) -> Option<bool> {
    match c.metadata.get(key)? {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}
