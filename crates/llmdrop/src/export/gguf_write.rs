//! Writing a GGUF file a tensor at a time: the header (metadata, then every tensor's name,
//! shape, type and offset, computed from its shape and type before any data exists), then
//! each tensor's bytes as its producer makes them. Memory holds what one producer makes at
//! once, never the model (candle's `gguf_file::write` takes every tensor, quantized, at
//! once).
//!
//! The layout is GGUF v3 as llama.cpp and candle read it: little-endian, strings as a u64
//! length and bytes, dimensions innermost first, tensor data aligned to 32 bytes.

use std::io::Write;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::GgmlDType;

use crate::error::{Error, Result};

/// Alignment of the tensor data (GGUF's default; `general.alignment` is not written).
const ALIGN: u64 = 32;

/// One tensor of the file: its GGUF name, HF-order shape (`[rows, cols]`) and type.
#[derive(Debug, Clone)]
pub(crate) struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: GgmlDType,
}

impl TensorSpec {
    /// The bytes its data takes: whole blocks of each row.
    pub(crate) fn bytes(&self) -> Result<u64> {
        let elems: u64 = self.shape.iter().map(|&d| d as u64).product();
        let block = self.dtype.block_size() as u64;
        let cols = self.shape.last().copied().unwrap_or(1) as u64;
        if !cols.is_multiple_of(block) {
            return Err(Error::unsupported(
                "GGUF export",
                format!(
                    "tensor {}: {cols} columns are not a whole number of {:?} blocks of {block}",
                    self.name, self.dtype
                ),
            ));
        }
        Ok(elems / block * self.dtype.type_size() as u64)
    }
}

/// GGUF's id of a tensor type.
fn type_id(dt: GgmlDType) -> Result<u32> {
    (0..=40)
        .find(|&id| crate::io::gguf_check::ggml_type(id) == Some(dt))
        .ok_or_else(|| Error::unsupported("GGUF export", format!("tensor type {dt:?}")))
}

fn string(w: &mut Vec<u8>, s: &str) {
    w.extend((s.len() as u64).to_le_bytes());
    w.extend(s.as_bytes());
}

/// GGUF's id of a metadata value's type.
fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn value(w: &mut Vec<u8>, key: &str, v: &Value) -> Result<()> {
    match v {
        Value::U8(x) => w.push(*x),
        Value::I8(x) => w.extend(x.to_le_bytes()),
        Value::U16(x) => w.extend(x.to_le_bytes()),
        Value::I16(x) => w.extend(x.to_le_bytes()),
        Value::U32(x) => w.extend(x.to_le_bytes()),
        Value::I32(x) => w.extend(x.to_le_bytes()),
        Value::U64(x) => w.extend(x.to_le_bytes()),
        Value::I64(x) => w.extend(x.to_le_bytes()),
        Value::F32(x) => w.extend(x.to_le_bytes()),
        Value::F64(x) => w.extend(x.to_le_bytes()),
        Value::Bool(x) => w.push(u8::from(*x)),
        Value::String(s) => string(w, s),
        Value::Array(items) => {
            let ty = items.first().map_or(4, value_type);
            if items.iter().any(|x| value_type(x) != ty) {
                return Err(Error::unsupported(
                    "GGUF export",
                    format!("metadata `{key}` mixes value types in one array"),
                ));
            }
            w.extend(ty.to_le_bytes());
            w.extend((items.len() as u64).to_le_bytes());
            for x in items {
                value(w, key, x)?;
            }
        }
    }
    Ok(())
}

/// The header: magic, version, counts, metadata, tensor infos, padding to the data.
fn header(meta: &[(String, Value)], tensors: &[TensorSpec]) -> Result<Vec<u8>> {
    let mut h = Vec::new();
    h.extend(b"GGUF");
    h.extend(3u32.to_le_bytes());
    h.extend((tensors.len() as u64).to_le_bytes());
    h.extend((meta.len() as u64).to_le_bytes());
    for (k, v) in meta {
        string(&mut h, k);
        h.extend(value_type(v).to_le_bytes());
        value(&mut h, k, v)?;
    }
    let mut off = 0u64;
    for t in tensors {
        string(&mut h, &t.name);
        h.extend((t.shape.len() as u32).to_le_bytes());
        for &d in t.shape.iter().rev() {
            h.extend((d as u64).to_le_bytes());
        }
        h.extend(type_id(t.dtype)?.to_le_bytes());
        h.extend(off.to_le_bytes());
        off += t.bytes()?.next_multiple_of(ALIGN);
    }
    h.resize((h.len() as u64).next_multiple_of(ALIGN) as usize, 0);
    Ok(h)
}

/// Writes `path`: `meta`, then the tensors of `tensors` in order, the data of tensor `i`
/// written by `data(i, w)` (which must write exactly [`TensorSpec::bytes`] bytes).
pub(crate) fn write_file(
    path: &Path,
    meta: &[(String, Value)],
    tensors: &[TensorSpec],
    mut data: impl FnMut(usize, &mut dyn Write) -> Result<()>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, e);
    let h = header(meta, tensors)?;
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = Counting {
        inner: std::io::BufWriter::with_capacity(8 << 20, file),
        n: 0,
    };
    w.write_all(&h).map_err(io)?;
    for (i, t) in tensors.iter().enumerate() {
        let start = w.n;
        data(i, &mut w)?;
        let (want, got) = (t.bytes()?, w.n - start);
        if got != want {
            return Err(Error::unsupported(
                "GGUF export",
                format!(
                    "tensor {}: {got} bytes written where {want} were due",
                    t.name
                ),
            ));
        }
        let pad = want.next_multiple_of(ALIGN) - want;
        w.write_all(&vec![0u8; pad as usize]).map_err(io)?;
    }
    let file = w.inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// A writer that counts what passes through.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{gguf_file, QTensor};
    use candle_core::{Device, Tensor};

    use super::*;

    /// The file reads back with candle's GGUF reader: metadata, shapes, types and the
    /// exact bytes of each tensor, as candle's own writer would have stored them.
    #[test]
    fn reads_back_with_candle() {
        let dev = Device::Cpu;
        let a = Tensor::arange(0f32, 512.0, &dev)
            .unwrap()
            .reshape((2, 256))
            .unwrap();
        let qa = QTensor::quantize(&a, GgmlDType::Q4K).unwrap();
        let b = Tensor::new(&[1f32, -2.0, 3.5], &dev).unwrap();
        let qb = QTensor::quantize(&b, GgmlDType::F32).unwrap();
        let meta = vec![
            (
                "general.architecture".to_string(),
                Value::String("llama".into()),
            ),
            (
                "x.list".to_string(),
                Value::Array(vec![Value::I32(1), Value::I32(-2)]),
            ),
            ("x.eps".to_string(), Value::F32(1e-5)),
        ];
        let specs = vec![
            TensorSpec {
                name: "a".into(),
                shape: vec![2, 256],
                dtype: GgmlDType::Q4K,
            },
            TensorSpec {
                name: "b".into(),
                shape: vec![3],
                dtype: GgmlDType::F32,
            },
        ];
        let data = [qa.data().unwrap().to_vec(), qb.data().unwrap().to_vec()];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        write_file(&path, &meta, &specs, |i, w| {
            w.write_all(&data[i]).map_err(|e| Error::io("t", e))
        })
        .unwrap();
        let mut f = std::fs::File::open(&path).unwrap();
        let c = gguf_file::Content::read(&mut f).unwrap();
        assert_eq!(
            c.metadata["general.architecture"].to_string().unwrap(),
            "llama"
        );
        assert_eq!(
            c.metadata["x.list"].to_vec().unwrap()[1].to_i32().unwrap(),
            -2
        );
        assert_eq!(c.metadata["x.eps"].to_f32().unwrap(), 1e-5);
        for (name, want) in [("a", &data[0]), ("b", &data[1])] {
            let t = c.tensor(&mut f, name, &dev).unwrap();
            assert_eq!(&t.data().unwrap().to_vec(), want, "tensor {name}");
        }
        let ta = c.tensor(&mut f, "a", &dev).unwrap();
        assert_eq!(
            (ta.dtype(), ta.shape().dims()),
            (GgmlDType::Q4K, &[2, 256][..])
        );
        // a producer that writes too little is an error, not a corrupt file
        let short = write_file(&path, &meta, &specs, |_, w| {
            w.write_all(&[0u8; 3]).map_err(|e| Error::io("t", e))
        });
        assert!(short.is_err());
    }
}
