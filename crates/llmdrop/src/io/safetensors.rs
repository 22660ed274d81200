//! Memory-mapped safetensors, single file or sharded through `model.safetensors.index.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata};
use safetensors::SafeTensors;

use super::{file_kind, TensorMeta, WeightSource};
use crate::error::{Error, Result};

/// Largest `model.safetensors.index.json` read (real ones hold a few thousand names).
const MAX_INDEX_BYTES: u64 = 64 << 20;

struct Shard {
    path: PathBuf,
    /// Kept open for page-cache advice ([`WeightSource::release`]).
    file: std::fs::File,
    mmap: Mmap,
    /// Offset of the data section in the file.
    data_start: usize,
    meta: Metadata,
}

/// All safetensors files of one HF directory, mapped into memory.
pub struct SafetensorsSource {
    dir: PathBuf,
    shards: Vec<Shard>,
    /// Tensor name -> shard index.
    routing: HashMap<String, usize>,
}

impl SafetensorsSource {
    /// Opens `dir/model.safetensors`, or every shard listed in
    /// `dir/model.safetensors.index.json`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if file_kind::exists(&index) {
            let text = file_kind::read_text(&index, MAX_INDEX_BYTES)?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::BadFile {
                path: index.clone(),
                reason: format!("not valid JSON: {e}"),
            })?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::BadFile {
                    path: index.clone(),
                    reason: "no `weight_map` object".into(),
                })?;
            let mut files: Vec<String> = map
                .values()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect();
            files.sort();
            files.dedup();
            // shards live in the directory: no absolute paths, no way out of it
            if let Some(f) = files.iter().find(|f| {
                Path::new(f)
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            }) {
                return Err(Error::BadFile {
                    path: index.clone(),
                    reason: format!("shard `{f}` is not a file name inside the directory"),
                });
            }
            files.into_iter().map(|f| dir.join(f)).collect()
        } else {
            let single = dir.join("model.safetensors");
            if !file_kind::exists(&single) {
                return Err(Error::BadFile {
                    path: dir.into(),
                    reason: "no model.safetensors or model.safetensors.index.json".into(),
                });
            }
            vec![single]
        };
        Self::open_files(dir, &files)
    }

    /// Opens the given safetensors files as one source.
    pub fn open_files(dir: &Path, files: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::with_capacity(files.len());
        let mut routing = HashMap::new();
        for path in files {
            file_kind::regular_file(path)?;
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the mapping is read-only; llmdrop never writes to its input files.
            // Another process truncating the file while it is mapped is outside our control
            // (the same contract as every mmap-based loader).
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let (n, meta) = SafeTensors::read_metadata(&mmap).map_err(|e| Error::BadFile {
                path: path.clone(),
                reason: format!("invalid safetensors ({e:?}); the file may be truncated"),
            })?;
            for name in meta.tensors().keys() {
                routing.insert(name.clone(), shards.len());
            }
            shards.push(Shard {
                path: path.clone(),
                file,
                mmap,
                data_start: 8 + n,
                meta,
            });
        }
        Ok(Self {
            dir: dir.into(),
            shards,
            routing,
        })
    }

    /// The safetensors files backing this source.
    pub fn files(&self) -> Vec<PathBuf> {
        self.shards.iter().map(|s| s.path.clone()).collect()
    }
}

fn candle_dtype(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F64 => DType::F64,
        Dtype::U8 => DType::U8,
        Dtype::U32 => DType::U32,
        Dtype::I64 => DType::I64,
        _ => return None,
    })
}

impl WeightSource for SafetensorsSource {
    fn path(&self) -> &Path {
        &self.dir
    }

    fn tensors(&self) -> Vec<TensorMeta> {
        let mut out: Vec<TensorMeta> = self
            .shards
            .iter()
            .flat_map(|s| {
                s.meta.tensors().into_iter().map(|(name, info)| TensorMeta {
                    name,
                    shape: info.shape.clone(),
                    dtype: format!("{:?}", info.dtype),
                    bytes: (info.data_offsets.1 - info.data_offsets.0) as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let shard = self.shards.get(*self.routing.get(name)?)?;
        shard.meta.info(name).map(|i| i.shape.clone())
    }

    fn raw_safetensors(&self, name: &str) -> Option<(Dtype, Vec<usize>, &[u8])> {
        let shard = self.shards.get(*self.routing.get(name)?)?;
        let info = shard.meta.info(name)?;
        let (a, b) = info.data_offsets;
        // offsets were checked against the file by `read_metadata`
        let bytes = shard.mmap.get(shard.data_start + a..shard.data_start + b)?;
        Some((info.dtype, info.shape.clone(), bytes))
    }

    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let s = self.stored(name)?;
        if (s.dtype, dtype) == (DType::BF16, DType::F32) && device.is_cpu() {
            return Ok(Tensor::from_vec(bf16_to_f32(s.bytes), s.shape, device)?);
        }
        let t = Tensor::from_raw_buffer(s.bytes, s.dtype, s.shape, device)
            .map_err(|e| bad(s.path, name, e.to_string()))?;
        Ok(if s.dtype == dtype {
            t
        } else {
            t.to_dtype(dtype)?
        })
    }

    /// Only the rows' bytes are read, and converted as [`WeightSource::load`] converts
    /// every value (one at a time: the same values).
    fn load_rows(
        &self,
        name: &str,
        ids: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let s = self.stored(name)?;
        let &[rows, cols] = s.shape else {
            return Err(bad(
                s.path,
                name,
                format!("shape {:?} is not a matrix", s.shape),
            ));
        };
        let n = s.bytes.len() / rows.max(1);
        let mut data = Vec::with_capacity(ids.len() * n);
        for &i in ids {
            if i >= rows {
                return Err(Error::TokenOutOfRange {
                    id: i as u64,
                    vocab: rows,
                });
            }
            data.extend_from_slice(&s.bytes[i * n..(i + 1) * n]);
        }
        let t = Tensor::from_raw_buffer(&data, s.dtype, &[ids.len(), cols], device)
            .map_err(|e| bad(s.path, name, e.to_string()))?;
        Ok(if s.dtype == dtype {
            t
        } else {
            t.to_dtype(dtype)?
        })
    }

    fn release(&self, names: &[String]) {
        for (shard, range) in names.iter().filter_map(|n| self.stored_range(n)) {
            super::release::drop_mapped(&shard.mmap, &shard.file, 0, range);
        }
    }

    fn prefetch(&self, names: &[String]) {
        for (shard, range) in names.iter().filter_map(|n| self.stored_range(n)) {
            super::release::read_ahead(&shard.file, range.start as u64, range.len() as u64);
        }
    }
}

/// A tensor as its file stores it.
struct Stored<'a> {
    path: &'a Path,
    dtype: DType,
    shape: &'a [usize],
    bytes: &'a [u8],
}

impl SafetensorsSource {
    /// The shard holding `name` and the tensor's byte range in its file (None: not stored).
    fn stored_range(&self, name: &str) -> Option<(&Shard, std::ops::Range<usize>)> {
        let shard = self.shards.get(*self.routing.get(name)?)?;
        let (a, b) = shard.meta.info(name)?.data_offsets;
        Some((shard, shard.data_start + a..shard.data_start + b))
    }

    /// The stored bytes of `name`, with its file, storage type and shape.
    fn stored(&self, name: &str) -> Result<Stored<'_>> {
        let missing = || Error::MissingTensor {
            path: self.dir.clone(),
            name: name.into(),
            hint: String::new(),
        };
        let shard = self
            .routing
            .get(name)
            .and_then(|&i| self.shards.get(i))
            .ok_or_else(missing)?;
        let info = shard.meta.info(name).ok_or_else(missing)?;
        let src = candle_dtype(info.dtype).ok_or_else(|| {
            bad(
                &shard.path,
                name,
                format!("unsupported storage type {:?}", info.dtype),
            )
        })?;
        let (a, b) = info.data_offsets;
        // offsets were checked against the file by `read_metadata`
        let bytes = shard
            .mmap
            .get(shard.data_start + a..shard.data_start + b)
            .ok_or_else(|| {
                bad(
                    &shard.path,
                    name,
                    format!("data offsets {a}..{b} lie outside the file"),
                )
            })?;
        Ok(Stored {
            path: &shard.path,
            dtype: src,
            shape: &info.shape,
            bytes,
        })
    }
}

/// Little-endian bf16 `bytes` widened to f32 (exact: the bf16 bits are the f32's upper half),
/// side by side on rayon's threads for a large tensor: a layer-streamed f32 run converts
/// every layer it reads.
fn bf16_to_f32(bytes: &[u8]) -> Vec<f32> {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 16;
    let mut out = vec![0f32; bytes.len() / 2];
    let widen = |(o, b): (&mut [f32], &[u8])| {
        for (o, b) in o.iter_mut().zip(b.chunks_exact(2)) {
            *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
        }
    };
    if out.len() >= 16 * CHUNK {
        out.par_chunks_mut(CHUNK)
            .zip(bytes.par_chunks(2 * CHUNK))
            .for_each(widen);
    } else {
        widen((&mut out, bytes));
    }
    out
}

fn bad(path: &Path, name: &str, reason: String) -> Error {
    Error::BadTensor {
        path: path.into(),
        name: name.into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    /// Widening every bf16 bit pattern (repeated past the size that converts on all
    /// threads, in a 2-thread pool) gives half's f32 value, NaN for NaN.
    #[test]
    fn bf16_widening_is_halfs_on_any_thread() {
        let patterns: Vec<u16> = (0..17).flat_map(|_| 0..=u16::MAX).collect();
        let bytes: Vec<u8> = patterns.iter().flat_map(|p| p.to_le_bytes()).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let got = pool.install(|| super::bf16_to_f32(&bytes));
        assert_eq!(got.len(), patterns.len());
        for (&p, g) in patterns.iter().zip(&got) {
            let want = half::bf16::from_bits(p).to_f32();
            match want.is_nan() {
                true => assert!(g.is_nan(), "{p:#06x}"),
                false => assert_eq!(g.to_bits(), want.to_bits(), "{p:#06x}"),
            }
        }
    }
}
