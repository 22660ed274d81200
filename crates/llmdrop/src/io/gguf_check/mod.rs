//! A bounded walk over a GGUF header, before candle's reader sees the file.
//!
//! candle's `Content::read` trusts what it reads: `general.alignment = 0` divides by zero, a
//! tensor's dims can overflow their product, and every metadata array element becomes a
//! [`Value`](candle_core::quantized::gguf_file::Value) of 32 bytes (a 100 MB array of bytes costs 3 GB). [`check`] reads the header
//! once, streaming, keeps only what the bytes it has read justify (tensor names, offsets and
//! sizes), and refuses — naming the key or tensor at fault — anything candle would fail on
//! badly, any tensor whose data is not inside the file, and any header whose parsed form
//! would cost more than [`PARSE_FACTOR`] times its bytes plus [`PARSE_SLACK`].

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use crate::error::{Error, Result};

mod reader;
mod types;

use reader::Walker;
pub(crate) use types::ggml_type;
use types::{Ty, TENSOR_INFO_SIZE, VALUE_SIZE};

/// Nesting allowed in metadata values: an array of arrays, no deeper.
const MAX_ARRAY_DEPTH: usize = 2;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;
/// Longest key or tensor name read into memory (the GGUF spec allows 65535-byte keys).
const MAX_NAME: u64 = 1 << 16;
/// What candle's parsed header may cost, as a multiple of the header's bytes …
pub const PARSE_FACTOR: u64 = 8;
/// … plus this much.
pub const PARSE_SLACK: u64 = 16 << 20;
/// Bookkeeping of one hash map entry in candle's `Content` (hash slot, `String` header).
const MAP_ENTRY: u64 = 48;

/// What the walk learned about a GGUF file that passed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufLayout {
    pub version: u32,
    pub tensor_count: u64,
    pub kv_count: u64,
    /// Bytes of magic, counts, metadata and tensor infos.
    pub header_bytes: u64,
    /// Where the tensor data starts (header end rounded up to the alignment).
    pub data_offset: u64,
    /// Estimated bytes candle's `Content::read` allocates for this header.
    pub parse_cost: u64,
}

/// Walks the GGUF header of `file` (from its start) and refuses it unless candle can parse it
/// in bounded memory and every tensor's data lies inside the file. Leaves the file position
/// anywhere: seek before reading it again.
pub fn check(path: &Path, file: &mut File) -> Result<GgufLayout> {
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    file.rewind().map_err(|e| Error::io(path, e))?;
    let mut w = Walker {
        r: BufReader::new(file),
        pos: 0,
        len,
        path,
        cost: 0,
    };
    w.header()
}

/// One tensor info, kept until the data offset is known.
struct TensorSpan {
    name: String,
    offset: u64,
    bytes: u64,
}

/// The header grammar: magic, counts, metadata, tensor infos.
impl<R: Read + Seek> Walker<'_, R> {
    fn header(&mut self) -> Result<GgufLayout> {
        let magic: [u8; 4] = self.bytes(&|| "the magic".into())?;
        if &magic != b"GGUF" {
            return Err(self.bad(format!("magic {magic:02x?} is not `GGUF`")));
        }
        let version = self.u32(&|| "the version".into())?;
        if version != 2 && version != 3 {
            return Err(self.bad(format!("version {version} (llmdrop reads GGUF v2 and v3)")));
        }
        let tensor_count = self.u64(&|| "the tensor count".into())?;
        let kv_count = self.u64(&|| "the metadata count".into())?;
        // every entry takes a minimum of bytes: key + type + 1-byte value, name + dims + type + offset
        let min_kv = 8 + 4 + 1;
        let min_tensor = 8 + 4 + 8 + 4 + 8;
        let needed = kv_count
            .checked_mul(min_kv)
            .and_then(|a| tensor_count.checked_mul(min_tensor)?.checked_add(a));
        if needed.is_none_or(|n| n > self.remaining()) {
            return Err(self.bad(format!(
                "{kv_count} metadata entries and {tensor_count} tensors cannot fit in the {} bytes left",
                self.remaining()
            )));
        }
        let mut keys = HashSet::new();
        let mut alignment = None;
        for i in 0..kv_count {
            let key = self.name(&|| format!("the key of metadata entry {i}"))?;
            let ty_id = self.u32(&|| format!("the type of `{key}`"))?;
            let ty = Ty::of(ty_id)
                .ok_or_else(|| self.bad(format!("`{key}` has unknown value type {ty_id}")))?;
            self.charge(MAP_ENTRY + VALUE_SIZE + key.len() as u64);
            if key == "general.alignment" {
                alignment = Some(self.alignment(ty)?);
            } else {
                self.value(&key, ty, 0)?;
            }
            if !keys.insert(key.clone()) {
                return Err(self.bad(format!("metadata key `{key}` appears twice")));
            }
        }
        drop(keys);
        let mut names = HashSet::new();
        let mut spans = Vec::new();
        for i in 0..tensor_count {
            let name = self.name(&|| format!("the name of tensor {i}"))?;
            let span = self.tensor_info(&name)?;
            if !names.insert(name.clone()) {
                return Err(self.bad(format!("tensor `{name}` appears twice")));
            }
            spans.push(span);
        }
        drop(names);
        let header_bytes = self.pos;
        let align = alignment.unwrap_or(candle_core::quantized::gguf_file::DEFAULT_ALIGNMENT);
        let data_offset = header_bytes
            .div_ceil(align)
            .checked_mul(align)
            .ok_or_else(|| self.bad("the data offset overflows".into()))?;
        for t in &spans {
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.bytes));
            if end.is_none_or(|e| e > self.len) {
                return Err(self.bad(format!(
                    "tensor `{}`: {} bytes at offset {} (data starts at {data_offset}) lie beyond the end of the {}-byte file",
                    t.name, t.bytes, t.offset, self.len
                )));
            }
        }
        let budget = header_bytes
            .saturating_mul(PARSE_FACTOR)
            .saturating_add(PARSE_SLACK);
        if self.cost > budget {
            return Err(self.bad(format!(
                "parsing its {header_bytes} header bytes would take about {} MiB (more than {PARSE_FACTOR}x the header plus {} MiB): too many small metadata values",
                self.cost >> 20,
                PARSE_SLACK >> 20
            )));
        }
        Ok(GgufLayout {
            version,
            tensor_count,
            kv_count,
            header_bytes,
            data_offset,
            parse_cost: self.cost,
        })
    }

    /// `general.alignment`: an integer type candle reads, positive, a power of two.
    fn alignment(&mut self, ty: Ty) -> Result<u64> {
        let what = || "`general.alignment`".to_string();
        let v: i128 = match ty {
            Ty::U8 => u8::from_le_bytes(self.bytes(&what)?).into(),
            Ty::I8 => i8::from_le_bytes(self.bytes(&what)?).into(),
            Ty::U16 => u16::from_le_bytes(self.bytes(&what)?).into(),
            Ty::I16 => i16::from_le_bytes(self.bytes(&what)?).into(),
            Ty::U32 => u32::from_le_bytes(self.bytes(&what)?).into(),
            Ty::I32 => i32::from_le_bytes(self.bytes(&what)?).into(),
            other => {
                return Err(self.bad(format!(
                "`general.alignment` has type {other:?}; it must be an integer of at most 32 bits"
            )))
            }
        };
        if v <= 0 || !(v as u64).is_power_of_two() {
            return Err(self.bad(format!(
                "`general.alignment` = {v} is not a positive power of two"
            )));
        }
        Ok(v as u64)
    }

    /// Skips one value of type `ty` (`depth` arrays deep), charging what candle would allocate.
    fn value(&mut self, key: &str, ty: Ty, depth: usize) -> Result<()> {
        let what = || format!("the value of `{key}`");
        match ty {
            Ty::Str => {
                let n = self.str_len(&what)?;
                self.skip(n, &what)?;
                self.charge(n);
            }
            Ty::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.bad(format!(
                        "`{key}` nests arrays more than {MAX_ARRAY_DEPTH} deep"
                    )));
                }
                let id = self.u32(&what)?;
                let elem = Ty::of(id).ok_or_else(|| {
                    self.bad(format!("`{key}` is an array of unknown value type {id}"))
                })?;
                let count = self.u64(&what)?;
                if count
                    .checked_mul(elem.min_size())
                    .is_none_or(|n| n > self.remaining())
                {
                    return Err(self.bad(format!(
                        "`{key}` claims {count} {elem:?} elements, the file has {} bytes left",
                        self.remaining()
                    )));
                }
                self.charge(count.saturating_mul(VALUE_SIZE));
                match elem {
                    Ty::Str | Ty::Array => {
                        for _ in 0..count {
                            self.value(key, elem, depth + 1)?;
                        }
                    }
                    // fixed-size elements: count * size was checked above
                    _ => self.skip(count * elem.min_size(), &what)?,
                }
            }
            Ty::Bool => {
                let [b] = self.bytes::<1>(&what)?;
                if b > 1 {
                    return Err(self.bad(format!("`{key}` is a bool of value {b}")));
                }
            }
            fixed => self.skip(fixed.min_size(), &what)?,
        }
        Ok(())
    }

    /// One tensor info after its name: dims, type, offset; checked for what candle assumes.
    fn tensor_info(&mut self, name: &str) -> Result<TensorSpan> {
        let what = || format!("the info of tensor `{name}`");
        let n_dims = self.u32(&what)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(self.bad(format!(
                "tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS})"
            )));
        }
        let mut elems: u64 = 1;
        let mut first = 0;
        for d in 0..n_dims {
            let n = self.u64(&what)?;
            if n == 0 {
                return Err(self.bad(format!("tensor `{name}` has an empty dimension {d}")));
            }
            if d == 0 {
                first = n;
            }
            elems = elems
                .checked_mul(n)
                .filter(|&e| usize::try_from(e).is_ok())
                .ok_or_else(|| {
                    self.bad(format!(
                        "tensor `{name}`: the product of its dims overflows"
                    ))
                })?;
        }
        let id = self.u32(&what)?;
        let ty = ggml_type(id)
            .ok_or_else(|| self.bad(format!("tensor `{name}` has unknown ggml type {id}")))?;
        let block = ty.block_size() as u64;
        if !first.is_multiple_of(block) {
            return Err(self.bad(format!(
                "tensor `{name}`: its first dimension {first} is not a multiple of the {ty:?} block size {block}"
            )));
        }
        // first % block == 0 so elems / block is exact; the product is bounded by elems
        let bytes = (elems / block)
            .checked_mul(ty.type_size() as u64)
            .ok_or_else(|| self.bad(format!("tensor `{name}`: its byte size overflows")))?;
        let offset = self.u64(&what)?;
        self.charge(MAP_ENTRY + TENSOR_INFO_SIZE + name.len() as u64 + 8 * n_dims as u64);
        Ok(TensorSpan {
            name: name.into(),
            offset,
            bytes,
        })
    }
}
