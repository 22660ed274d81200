//! Checked access to a [`WeightSource`]: every tensor's shape is checked against the config,
//! and every value the decoder will compute with is checked to be finite (a NaN or an
//! infinity in a weight is an error naming the file and tensor, found at load rather than
//! as a NaN perplexity or a NaN score).

use std::sync::Arc;

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use llmdrop_kernels::gemm::bf16::{self, Bf16Matrix};
use llmdrop_kernels::gemm::PackedMatrix;
use llmdrop_kernels::quant::{QKind, QMatrix};

use super::matrix::MatrixWeight;
use crate::error::{Error, Result};
use crate::io::WeightSource;
use crate::quant::{QuantMode, Stored};

/// A weight source plus the dtype and device tensors are loaded to, and the quantized
/// kind matrices are held in (if any).
pub struct Weights<'a> {
    pub src: &'a dyn WeightSource,
    /// The model's family (its GGUF names, in errors).
    pub arch: &'static crate::arch::ArchSpec,
    pub dtype: DType,
    pub device: &'a Device,
    pub quant: Option<QuantMode>,
}

impl<'a> Weights<'a> {
    /// The weights of `src`, loaded for `cfg`'s family at `precision` on `device`.
    pub fn new(
        src: &'a dyn WeightSource,
        cfg: &crate::config::Config,
        precision: crate::quant::Precision,
        device: &'a Device,
    ) -> Self {
        choose_kernels(device);
        Self {
            src,
            arch: cfg.arch,
            dtype: precision.compute_dtype(),
            device,
            quant: precision.quant(),
        }
    }
}

/// Chooses the f32 products' call on `device` now (timed once a process, ~25 ms; see
/// `llmdrop_kernels::gemm::tune`), as a model is opened: not inside the first pass a
/// benchmark or a score times, nor on a pool thread beside others' work. Every model runs
/// f32 products there (attention's at least, whatever the weights' dtype).
pub(crate) fn choose_kernels(device: &Device) {
    if device.is_cpu() && llmdrop_kernels::caps().avx512f() {
        llmdrop_kernels::gemm::Blocking::get();
    }
}

impl Weights<'_> {
    /// Loads the `[rows, cols]` matrix `name`, quantized as the mode asks. GGUF blocks
    /// of the kind asked for are repacked as stored; anything else is read as f32 and
    /// quantized. `head`: the embedding / lm_head matrix.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize, head: bool) -> Result<MatrixWeight> {
        if self.quant == Some(QuantMode::Bf16Mixed) && !head {
            return self.bf16_matrix(name, rows, cols);
        }
        let mode = match self.quant {
            Some(m) if QMatrix::fits(cols) => m,
            _ => return self.dense(name, rows, cols),
        };
        let stored = self.src.ggml_type(name).map_or(Stored::Float, Stored::of);
        let Some(kind) = mode.kind(stored, head) else {
            return self.dense(name, rows, cols);
        };
        // blocks of the kind asked for are kept as stored
        let same = matches!(
            (kind, stored),
            (QKind::Q8, Stored::Q8) | (QKind::Q4, Stored::Q4)
        );
        if same {
            if let Some(q) = self.stored_blocks(name, rows, cols)? {
                return Ok(q);
            }
        }
        if mode == QuantMode::Q4K && kind == QKind::Q4 && cols.is_multiple_of(256) {
            use candle_core::quantized::{GgmlDType, QTensor};
            let t = self.get(name, &[rows, cols])?.to_dtype(DType::F32)?;
            let g = QTensor::quantize(&t, GgmlDType::Q4K)?;
            let q = QMatrix::from_ggml(GgmlDType::Q4K, &g.data()?, rows, cols, None)
                .map_err(|e| self.bad(name, e))?
                .ok_or_else(|| self.bad(name, "Q4_K blocks did not repack"))?;
            return Ok(MatrixWeight::Quant(Arc::new(q)));
        }
        // quantizing checks that every value is finite
        let t = self.load_as_is(name, &[rows, cols])?.to_dtype(DType::F32)?;
        let q = QMatrix::quantize(kind, &t.flatten_all()?.to_vec1::<f32>()?, rows, cols)
            .map_err(|e| self.bad(name, e))?;
        Ok(MatrixWeight::Quant(Arc::new(q)))
    }

    /// `name` as a [`Bf16Matrix`] whatever the CPU (without AVX-512 BF16 its product runs
    /// the portable kernel): bf16 values as stored, others rounded to nearest (after the
    /// finiteness check, so a value past bf16's range is an error, never an infinity).
    fn bf16_matrix(&self, name: &str, rows: usize, cols: usize) -> Result<MatrixWeight> {
        // a bf16 file's values loaded as they are (not widened to f32 and rounded back)
        let stored_bf16 = self
            .src
            .tensors()
            .iter()
            .any(|t| t.name == name && t.dtype.eq_ignore_ascii_case("bf16"));
        let dtype = if stored_bf16 { DType::BF16 } else { self.dtype };
        let t = Weights { dtype, ..*self }.get(name, &[rows, cols])?;
        let packed = match t.dtype() {
            DType::BF16 => Bf16Matrix::pack(&t.flatten_all()?.to_vec1::<half::bf16>()?, rows, cols),
            _ => {
                let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                if let Some(i) = v.iter().position(|&x| !bf16::round(x).is_finite()) {
                    let at = [i / cols.max(1), i % cols.max(1)];
                    return Err(self.bad(
                        name,
                        format!("value {} at {at:?} is past bf16's range", v[i]),
                    ));
                }
                Bf16Matrix::from_f32(&v, rows, cols)
            }
        }
        .map_err(|e| self.bad(name, e))?;
        Ok(MatrixWeight::Bf16(Arc::new(packed)))
    }

    /// Whether [`Weights::matrix`] holds `name` (`cols` wide) in a layout of llmdrop's own
    /// kernels (packed f32, packed bf16, quantized blocks), whose every output is one chain
    /// over the columns whatever the matrix's other rows, rather than as a dense candle
    /// tensor (candle's matmul may sum in another order for another number of rows).
    pub fn own_kernel(&self, name: &str, cols: usize, head: bool) -> bool {
        if self.quant == Some(QuantMode::Bf16Mixed) && !head {
            return true;
        }
        if let Some(m) = self.quant.filter(|_| QMatrix::fits(cols)) {
            let stored = self.src.ggml_type(name).map_or(Stored::Float, Stored::of);
            if m.kind(stored, head).is_some() {
                return true;
            }
        }
        let caps = llmdrop_kernels::caps();
        self.device.is_cpu()
            && match self.dtype {
                DType::F32 => caps.avx512f(),
                DType::BF16 => caps.avx512_bf16(),
                _ => false,
            }
    }

    /// A `[rows, cols]` table only looked up by row (embeddings without an output head):
    /// GGUF blocks that repack exactly stay as stored, anything else loads as
    /// [`Weights::matrix`] does.
    pub fn rows_table(&self, name: &str, rows: usize, cols: usize) -> Result<MatrixWeight> {
        // quantized rows come out f32: kept as stored only where f32 is the compute type
        if QMatrix::fits(cols) && self.device.is_cpu() && self.dtype == DType::F32 {
            if let Some(q) = self.stored_blocks(name, rows, cols)? {
                return Ok(q);
            }
        }
        self.matrix(name, rows, cols, true)
    }

    /// The GGUF blocks of `name` repacked as stored (data read once, never dequantized),
    /// if the file stores it `[rows, cols]` in a type that repacks exactly. Repacking checks
    /// every block's scale and offset (the only values of a block that can be non-finite).
    fn stored_blocks(&self, name: &str, rows: usize, cols: usize) -> Result<Option<MatrixWeight>> {
        if self.src.shape(name).as_deref() != Some(&[rows, cols][..]) {
            return Ok(None);
        }
        let Some(g) = self.src.load_ggml(name)? else {
            return Ok(None);
        };
        let q = QMatrix::from_ggml(g.dtype, &g.data, rows, cols, g.row_order.as_deref())
            .map_err(|e| self.bad(name, e))?;
        Ok(q.map(|q| MatrixWeight::Quant(Arc::new(q))))
    }

    /// A float matrix: packed for the AVX-512 kernel when it is f32 and the CPU has one,
    /// packed for the AVX-512 BF16 kernel when it is bf16 and the CPU has that, else a
    /// candle tensor.
    fn dense(&self, name: &str, rows: usize, cols: usize) -> Result<MatrixWeight> {
        let t = self.get(name, &[rows, cols])?;
        if t.dtype() == DType::BF16 && self.device.is_cpu() && llmdrop_kernels::caps().avx512_bf16()
        {
            let packed = {
                let (storage, layout) = t.storage_and_layout();
                match (&*storage, layout.contiguous_offsets()) {
                    (Storage::Cpu(CpuStorage::BF16(v)), Some((a, b))) => {
                        Bf16Matrix::pack(&v[a..b], rows, cols)
                    }
                    _ => Bf16Matrix::pack(&t.flatten_all()?.to_vec1::<half::bf16>()?, rows, cols),
                }
            }
            .map_err(|e| self.bad(name, e))?;
            drop(t);
            return Ok(MatrixWeight::Bf16(Arc::new(packed)));
        }
        if t.dtype() != DType::F32 || !self.device.is_cpu() || !llmdrop_kernels::caps().avx512f() {
            return Ok(MatrixWeight::Dense(t));
        }
        // packed straight from the loaded tensor's storage (no intermediate copy)
        let packed = {
            let (storage, layout) = t.storage_and_layout();
            match (&*storage, layout.contiguous_offsets()) {
                (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => {
                    PackedMatrix::pack(&v[a..b], rows, cols)
                }
                _ => PackedMatrix::pack(&t.flatten_all()?.to_vec1::<f32>()?, rows, cols),
            }
        };
        drop(t);
        Ok(MatrixWeight::Packed(Arc::new(packed)))
    }

    fn bad(&self, name: &str, e: impl std::fmt::Display) -> Error {
        let mut reason = e.to_string();
        if let Some(g) = self.gguf_name(name) {
            reason = format!("(`{g}` in the file) {reason}");
        }
        Error::BadTensor {
            path: self.file_of(name),
            name: name.into(),
            reason,
        }
    }

    /// The GGUF name of `name` when the source is a GGUF file.
    fn gguf_name(&self, name: &str) -> Option<String> {
        self.src.ggml_type(name)?;
        crate::io::names::hf_to_gguf(self.arch, name).filter(|g| g != name)
    }

    /// The file holding `name`: the source itself, or for an HF directory the safetensors
    /// file its index routes `name` to. Only used for errors.
    fn file_of(&self, name: &str) -> std::path::PathBuf {
        let dir = self.src.path();
        if !dir.is_dir() {
            return dir.into();
        }
        let index = dir.join("model.safetensors.index.json");
        let routed = std::fs::read_to_string(&index).ok().and_then(|text| {
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            Some(dir.join(v.get("weight_map")?.get(name)?.as_str()?))
        });
        routed.unwrap_or_else(|| dir.join("model.safetensors"))
    }

    /// Loads `name`, which must have shape `shape`; an error if any value is not finite.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.load_as_is(name, shape)?;
        self.check_finite(name, &t)?;
        Ok(t)
    }

    /// An error naming the first non-finite value of `t` (one pass that vectorises).
    fn check_finite(&self, name: &str, t: &Tensor) -> Result<()> {
        let Some((i, v)) = first_non_finite(t)? else {
            return Ok(());
        };
        // the flat index as coordinates of the tensor's shape
        let mut at = Vec::with_capacity(t.rank());
        let mut rest = i;
        for &d in t.dims().iter().rev() {
            at.push(rest % d.max(1));
            rest /= d.max(1);
        }
        at.reverse();
        // a half-precision load can overflow a finite file value
        let as_loaded = match t.dtype() {
            d @ (DType::F16 | DType::BF16) => format!(" as loaded in {d:?}"),
            _ => String::new(),
        };
        Err(self.bad(
            name,
            format!("value {v} at {at:?} is not finite{as_loaded}"),
        ))
    }

    /// Loads `name`, which must have shape `shape`, with no check of its values.
    fn load_as_is(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let found = self.src.shape(name).ok_or_else(|| self.missing(name))?;
        if found != shape {
            return Err(Error::TensorShape {
                path: self.src.path().into(),
                name: name.into(),
                expected: shape.to_vec(),
                found,
            });
        }
        self.src.load(name, self.dtype, self.device)
    }

    pub fn has(&self, name: &str) -> bool {
        self.src.shape(name).is_some()
    }

    fn missing(&self, name: &str) -> Error {
        // "did you mean": the stored name sharing the longest suffix with the wanted one.
        let names = self.src.tensors();
        let best = names
            .iter()
            .map(|t| {
                let common = t
                    .name
                    .chars()
                    .rev()
                    .zip(name.chars().rev())
                    .take_while(|(a, b)| a == b)
                    .count();
                (common, &t.name)
            })
            .max_by_key(|(c, _)| *c)
            .filter(|(c, _)| *c >= 6);
        Error::MissingTensor {
            path: self.src.path().into(),
            name: name.into(),
            hint: best
                .map(|(_, n)| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default(),
        }
    }
}

/// The flat index and value of the first NaN or infinity of a tensor (any float dtype;
/// other dtypes are finite), else None. Tests an exponent mask over chunks without an
/// early exit inside a chunk, so the scan vectorises and runs at memory speed.
fn first_non_finite(t: &Tensor) -> Result<Option<(usize, f64)>> {
    fn scan<T: Copy + Sync>(v: &[T], bad: impl Fn(T) -> bool + Sync) -> Option<usize> {
        use rayon::prelude::*;
        const CHUNK: usize = 4096;
        let any = |chunk: &[T]| chunk.iter().fold(false, |a, &x| a | bad(x));
        // the first chunk holding a bad value; large tensors scanned on all threads
        let c = match v.len() >= 256 * CHUNK {
            true => v.par_chunks(CHUNK).position_first(any),
            false => v.chunks(CHUNK).position(any),
        }?;
        let chunk = &v[c * CHUNK..((c + 1) * CHUNK).min(v.len())];
        chunk.iter().position(|&x| bad(x)).map(|i| c * CHUNK + i)
    }
    if !t.device().is_cpu() || !t.is_contiguous() {
        // not a plain CPU tensor: check a contiguous CPU copy
        return first_non_finite(&t.to_device(&Device::Cpu)?.contiguous()?);
    }
    let (storage, layout) = t.storage_and_layout();
    let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) else {
        return Ok(None);
    };
    Ok(match cpu {
        CpuStorage::F32(v) => {
            let v = &v[a..b];
            scan(v, |x: f32| x.to_bits() & 0x7f80_0000 == 0x7f80_0000).map(|i| (i, v[i] as f64))
        }
        CpuStorage::F16(v) => {
            let v = &v[a..b];
            scan(v, |x: half::f16| x.to_bits() & 0x7c00 == 0x7c00).map(|i| (i, v[i].to_f64()))
        }
        CpuStorage::BF16(v) => {
            let v = &v[a..b];
            scan(v, |x: half::bf16| x.to_bits() & 0x7f80 == 0x7f80).map(|i| (i, v[i].to_f64()))
        }
        CpuStorage::F64(v) => {
            let v = &v[a..b];
            scan(v, |x: f64| !x.is_finite()).map(|i| (i, v[i]))
        }
        _ => None,
    })
}
