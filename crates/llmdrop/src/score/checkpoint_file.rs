//! One layer's checkpoint file, `layer-N.ckpt` (N layers done), all little-endian:
//!
//! ```text
//! "LLMDCKPT" | format u32 | key id (64 hex bytes) | N u64 | layers u64 | blocks u64
//! per block:  probe sums: layers x (sum f64, count u64) for block, attention, MLP;
//!             (layers+1)^2 pair sums f64; pair_tokens, tokens, unit_tokens, hidden,
//!             filled u64
//!             unit file: bytes u64, checksum u64
//!             hidden state: dtype u8 | rank u64 | dims rank x u64 | raw values
//! checksum u64 of everything before it
//! ```
//!
//! A reader checks every count against what the run expects before it allocates, and the
//! checksum before it returns anything: a damaged or cut file is refused, never misread.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::probe::ProbeState;
use crate::dest::{Mark, Sum64};
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"LLMDCKPT";
/// Layout of the file; part of the checkpoint key too.
pub(crate) const FORMAT: u32 = 1;

/// What one layer's checkpoint holds, per block.
pub(crate) struct Saved {
    pub probes: Vec<ProbeState>,
    pub marks: Vec<Mark>,
    pub states: Vec<Tensor>,
}

/// What a reader expects: the key, the layers done, each block's tokens, the width and
/// dtype of the hidden states.
pub(crate) struct Expect<'a> {
    pub id: &'a str,
    pub done: usize,
    pub layers: usize,
    pub tokens: Vec<usize>,
    pub hidden: usize,
    pub dtype: DType,
}

/// Bytes and checksum of what passes through.
struct Summed<T> {
    inner: T,
    sum: Sum64,
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.sum.update(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Summed<R> {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(b)?;
        self.sum.update(&b[..n]);
        Ok(n)
    }
}

fn dtype_code(d: DType) -> Option<u8> {
    [DType::F32, DType::F16, DType::BF16, DType::F64]
        .iter()
        .position(|&x| x == d)
        .map(|i| i as u8)
}

/// The size of the file [`write`] makes.
pub(crate) fn file_bytes(layers: usize, states: &[Tensor]) -> u64 {
    let probe = (3 * layers * 16 + (layers + 1) * (layers + 1) * 8 + 5 * 8) as u64;
    let per_state = |t: &Tensor| {
        let rank = t.dims().len() as u64;
        1 + 8 + 8 * rank + (t.elem_count() * t.dtype().size_in_bytes()) as u64
    };
    let blocks: u64 = states.iter().map(|t| probe + 16 + per_state(t)).sum();
    8 + 4 + 64 + 24 + blocks + 8
}

/// Writes the checkpoint of `done` layers to `path` and flushes it to the disk. Only I/O
/// can fail here: the dtypes were checked by [`state_bytes`] callers.
pub(crate) fn write(
    path: &Path,
    id: &str,
    done: usize,
    layers: usize,
    saved: &Saved,
) -> Result<()> {
    let io = |cause| Error::io(path, cause);
    let file = File::create(path).map_err(io)?;
    let mut w = Summed {
        inner: BufWriter::with_capacity(1 << 20, file),
        sum: Sum64::new(),
    };
    (|| -> std::io::Result<()> {
        w.write_all(MAGIC)?;
        w.write_all(&FORMAT.to_le_bytes())?;
        w.write_all(id.as_bytes())?;
        for v in [done, layers, saved.states.len()] {
            put(&mut w, v as u64)?;
        }
        Ok(())
    })()
    .map_err(io)?;
    for ((p, m), t) in saved.probes.iter().zip(&saved.marks).zip(&saved.states) {
        let (code, bytes) = state_bytes(t)?;
        (|| -> std::io::Result<()> {
            for &(sum, count) in p.block.iter().chain(&p.attn).chain(&p.mlp) {
                put(&mut w, sum.to_bits())?;
                put(&mut w, count)?;
            }
            for v in &p.pairs {
                put(&mut w, v.to_bits())?;
            }
            for &c in p.counts.iter().chain(&[m.bytes, m.sum]) {
                put(&mut w, c)?;
            }
            w.write_all(&[code])?;
            put(&mut w, t.dims().len() as u64)?;
            for &d in t.dims() {
                put(&mut w, d as u64)?;
            }
            w.write_all(&bytes)
        })()
        .map_err(io)?;
    }
    let sum = w.sum.value();
    let mut inner = w.inner;
    inner.write_all(&sum.to_le_bytes()).map_err(io)?;
    let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)
}

/// A hidden state's dtype code and raw little-endian values.
pub(crate) fn state_bytes(t: &Tensor) -> Result<(u8, Vec<u8>)> {
    let flat = t.flatten_all()?;
    let bytes: Vec<u8> = match t.dtype() {
        DType::F32 => flat
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F64 => flat
            .to_vec1::<f64>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F16 => (flat.to_vec1::<half::f16>()?.iter())
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect(),
        DType::BF16 => (flat.to_vec1::<half::bf16>()?.iter())
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect(),
        d => {
            return Err(Error::unsupported(
                "checkpoint",
                format!("hidden states in {d:?}"),
            ))
        }
    };
    let code = dtype_code(t.dtype()).expect("one of the four above");
    Ok((code, bytes))
}

/// Reads the checkpoint at `path` as `want` expects it; why not, when it does not match,
/// is cut short or damaged.
pub(crate) fn read(
    path: &Path,
    want: &Expect<'_>,
    device: &Device,
) -> std::result::Result<Saved, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut r = Summed {
        inner: BufReader::with_capacity(1 << 20, file),
        sum: Sum64::new(),
    };
    let short = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "the file is cut short".to_string(),
        _ => e.to_string(),
    };
    let mut head = [0u8; 12 + 64];
    r.read_exact(&mut head).map_err(short)?;
    if &head[..8] != MAGIC || head[8..12] != FORMAT.to_le_bytes() {
        return Err("not a checkpoint of this llmdrop version".into());
    }
    if &head[12..] != want.id.as_bytes() {
        return Err("the checkpoint of another model, data or settings".into());
    }
    let blocks = want.tokens.len();
    let counts = [want.done, want.layers, blocks].map(|v| v as u64);
    for (what, &expected) in ["layers done", "layers", "blocks"].iter().zip(&counts) {
        let got = get(&mut r).map_err(short)?;
        if got != expected {
            return Err(format!("{got} {what}, {expected} expected"));
        }
    }
    let l = want.layers;
    let code = dtype_code(want.dtype).ok_or("hidden states of an unsupported dtype")?;
    let mut saved = Saved {
        probes: Vec::with_capacity(blocks),
        marks: Vec::with_capacity(blocks),
        states: Vec::with_capacity(blocks),
    };
    for &t in &want.tokens {
        let mut pairs = || -> std::io::Result<Vec<(f64, u64)>> {
            (0..l)
                .map(|_| Ok((f64::from_bits(get(&mut r)?), get(&mut r)?)))
                .collect()
        };
        let (block, attn, mlp) = (
            pairs().map_err(short)?,
            pairs().map_err(short)?,
            pairs().map_err(short)?,
        );
        let sums = ((0..(l + 1) * (l + 1)).map(|_| get(&mut r).map(f64::from_bits)))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(short)?;
        let mut c = [0u64; 7];
        for v in &mut c {
            *v = get(&mut r).map_err(short)?;
        }
        saved.probes.push(ProbeState {
            block,
            attn,
            mlp,
            pairs: sums,
            counts: [c[0], c[1], c[2], c[3], c[4]],
        });
        saved.marks.push(Mark {
            bytes: c[5],
            sum: c[6],
        });
        let mut kind = [0u8; 1];
        r.read_exact(&mut kind).map_err(short)?;
        let rank = get(&mut r).map_err(short)?;
        let dims = match rank {
            3 => [get(&mut r), get(&mut r), get(&mut r)],
            _ => return Err(format!("a hidden state of rank {rank}, 3 expected")),
        };
        let dims = dims
            .map(|d| d.map_err(short))
            .into_iter()
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let expected = [1, t as u64, want.hidden as u64];
        if kind[0] != code || dims != expected {
            return Err(format!(
                "a hidden state of shape {dims:?} (dtype code {}), {expected:?} ({code}) expected",
                kind[0]
            ));
        }
        let mut raw = vec![0u8; t * want.hidden * want.dtype.size_in_bytes()];
        r.read_exact(&mut raw).map_err(short)?;
        saved.states.push(
            tensor_of(&raw, want.dtype, [1, t, want.hidden], device).map_err(|e| e.to_string())?,
        );
    }
    let sum = r.sum.value();
    let mut trailer = [0u8; 8];
    r.inner.read_exact(&mut trailer).map_err(short)?;
    if u64::from_le_bytes(trailer) != sum {
        return Err("its checksum does not match its contents (the file is damaged)".into());
    }
    if r.inner.read(&mut [0u8; 1]).map_err(|e| e.to_string())? != 0 {
        return Err("bytes after the end of the checkpoint".into());
    }
    Ok(saved)
}

fn put(w: &mut impl Write, v: u64) -> std::io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn get(r: &mut impl Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// The tensor of `dims` whose raw little-endian values are `raw`.
fn tensor_of(raw: &[u8], dtype: DType, dims: [usize; 3], device: &Device) -> Result<Tensor> {
    let dims = (dims[0], dims[1], dims[2]);
    macro_rules! values {
        ($n:literal, $f:expr) => {
            raw.chunks_exact($n)
                .map(|c| $f(c.try_into().expect("chunks of $n")))
                .collect::<Vec<_>>()
        };
    }
    let t = match dtype {
        DType::F32 => Tensor::from_vec(values!(4, f32::from_le_bytes), dims, device)?,
        DType::F64 => Tensor::from_vec(values!(8, f64::from_le_bytes), dims, device)?,
        DType::F16 => Tensor::from_vec(
            values!(2, |b| half::f16::from_bits(u16::from_le_bytes(b))),
            dims,
            device,
        )?,
        DType::BF16 => Tensor::from_vec(
            values!(2, |b| half::bf16::from_bits(u16::from_le_bytes(b))),
            dims,
            device,
        )?,
        d => {
            return Err(Error::unsupported(
                "checkpoint",
                format!("hidden states in {d:?}"),
            ))
        }
    };
    Ok(t)
}
