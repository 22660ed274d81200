//! Writing one safetensors file a tensor at a time: the header from the tensors' types and
//! shapes, then each tensor's bytes, copied (or converted a few rows at a time) and written
//! before the next is touched, its stored pages handed back once written. Memory holds
//! one tensor's mapped bytes at most (a GGUF source: a slice of rows in f32), never a shard.

use std::io::Write;
use std::path::Path;

use candle_core::{DType, Device};
use safetensors::Dtype;

use crate::error::{Error, Result};
use crate::io::WeightSource;

/// Rows converted at once when a tensor is not copied byte for byte: about 64 MiB of f32.
const CHUNK_BYTES: usize = 64 << 20;

/// What one tensor of the file will be: its type, shape and byte count.
pub(crate) struct Planned {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: u64,
}

/// `name`'s type, shape and size as the export writes it: a safetensors source's bytes as
/// stored, anything else f32.
pub(crate) fn plan(src: &dyn WeightSource, name: &str) -> Result<Planned> {
    if let Some((dtype, shape, b)) = src.raw_safetensors(name) {
        return Ok(Planned {
            dtype,
            shape,
            bytes: b.len() as u64,
        });
    }
    let shape = src.shape(name).ok_or_else(|| Error::MissingTensor {
        path: src.path().into(),
        name: name.into(),
        hint: String::new(),
    })?;
    let elems: u64 = shape.iter().map(|&d| d as u64).product();
    Ok(Planned {
        dtype: Dtype::F32,
        shape,
        bytes: elems * 4,
    })
}

/// The file's header: the JSON (tensors in `tensors`' order, contiguous from offset 0),
/// padded with spaces to a multiple of 8 bytes as the safetensors crate writes it.
fn header(tensors: &[(&str, &Planned)]) -> Result<Vec<u8>> {
    let mut map = serde_json::Map::new();
    map.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut off = 0u64;
    for (name, p) in tensors {
        let dtype = serde_json::to_value(p.dtype)
            .map_err(|e| Error::context(format!("tensor {name}"), e))?;
        map.insert(
            (*name).into(),
            serde_json::json!({"dtype": dtype, "shape": p.shape, "data_offsets": [off, off + p.bytes]}),
        );
        off += p.bytes;
    }
    let mut h = serde_json::to_vec(&map).map_err(|e| Error::context("safetensors header", e))?;
    h.resize(h.len().next_multiple_of(8), b' ');
    Ok(h)
}

/// Writes `tensors` ((name in the file, name in `src`, its plan)) to `path` in that order.
pub(crate) fn write_file(
    src: &dyn WeightSource,
    tensors: &[(&str, &str, &Planned)],
    path: &Path,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, e);
    let named: Vec<(&str, &Planned)> = tensors.iter().map(|(n, _, p)| (*n, *p)).collect();
    let h = header(&named)?;
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(8 << 20, file);
    w.write_all(&(h.len() as u64).to_le_bytes()).map_err(io)?;
    w.write_all(&h).map_err(io)?;
    for &(new, old, p) in tensors {
        let written = match src.raw_safetensors(old) {
            Some((_, _, bytes)) => {
                w.write_all(bytes).map_err(io)?;
                bytes.len() as u64
            }
            None => write_f32(src, old, &p.shape, &mut w).map_err(|e| match e {
                Error::Io { .. } => e,
                e => Error::context(format!("tensor {new}"), e),
            })?,
        };
        src.release(&[old.to_string()]);
        if written != p.bytes {
            return Err(Error::BadFile {
                path: src.path().into(),
                reason: format!(
                    "tensor {old} gave {written} bytes where its shape says {}",
                    p.bytes
                ),
            });
        }
    }
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// Writes `name` as little-endian f32, a slice of rows at a time for a matrix.
fn write_f32(
    src: &dyn WeightSource,
    name: &str,
    shape: &[usize],
    w: &mut impl Write,
) -> Result<u64> {
    let mut put = |t: candle_core::Tensor| -> Result<u64> {
        let v = t.flatten_all()?.to_vec1::<f32>()?;
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.write_all(&bytes).map_err(|e| Error::io(src.path(), e))?;
        Ok(bytes.len() as u64)
    };
    let &[rows, cols] = shape else {
        return put(src.load(name, DType::F32, &Device::Cpu)?);
    };
    let step = (CHUNK_BYTES / (4 * cols.max(1))).max(1);
    let mut n = 0;
    for start in (0..rows).step_by(step) {
        let ids: Vec<usize> = (start..(start + step).min(rows)).collect();
        n += put(src.load_rows(name, &ids, DType::F32, &Device::Cpu)?)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header the safetensors crate itself writes for the same tensors: our file
    /// parses with it, offsets contiguous, padded to 8.
    #[test]
    fn header_parses_as_safetensors() {
        let a = Planned {
            dtype: Dtype::BF16,
            shape: vec![2, 3],
            bytes: 12,
        };
        let b = Planned {
            dtype: Dtype::F32,
            shape: vec![5],
            bytes: 20,
        };
        let h = header(&[("w.b", &a), ("w.a", &b)]).unwrap();
        assert_eq!(h.len() % 8, 0);
        let mut file = (h.len() as u64).to_le_bytes().to_vec();
        file.extend(&h);
        file.extend((0u8..32).collect::<Vec<_>>());
        let st = safetensors::SafeTensors::deserialize(&file).unwrap();
        let t = st.tensor("w.a").unwrap();
        assert_eq!(
            (t.dtype(), t.shape(), t.data()),
            (Dtype::F32, &[5][..], &(12u8..32).collect::<Vec<_>>()[..])
        );
        assert_eq!(
            st.tensor("w.b").unwrap().data(),
            &(0u8..12).collect::<Vec<_>>()[..]
        );
    }
}
