//! A GGUF file as editable parts, and a map of every number in its header, for
//! structure-aware mutations: values can be given any type id, counts can lie.

#![allow(dead_code)]

/// A metadata value as written: scalars as their raw bytes (so a type id and its payload
/// can disagree), strings, and arrays with their element type id.
#[derive(Debug, Clone)]
pub enum Val {
    Raw(Vec<u8>),
    Str(Vec<u8>),
    Array(u32, Vec<Val>),
}

impl Val {
    pub fn u32(x: u32) -> (u32, Val) {
        (4, Val::Raw(x.to_le_bytes().to_vec()))
    }
    pub fn i32(x: i32) -> (u32, Val) {
        (5, Val::Raw(x.to_le_bytes().to_vec()))
    }
    pub fn u64(x: u64) -> (u32, Val) {
        (10, Val::Raw(x.to_le_bytes().to_vec()))
    }
    pub fn f32(x: f32) -> (u32, Val) {
        (6, Val::Raw(x.to_le_bytes().to_vec()))
    }
    pub fn u8(x: u8) -> (u32, Val) {
        (0, Val::Raw(vec![x]))
    }
    pub fn bool(x: u8) -> (u32, Val) {
        (7, Val::Raw(vec![x]))
    }
    pub fn str(s: &str) -> (u32, Val) {
        (8, Val::Str(s.as_bytes().to_vec()))
    }
    pub fn u32s(v: &[u32]) -> (u32, Val) {
        (9, Val::Array(4, v.iter().map(|&x| Val::u32(x).1).collect()))
    }
    pub fn strs(v: &[&str]) -> (u32, Val) {
        (9, Val::Array(8, v.iter().map(|s| Val::str(s).1).collect()))
    }
}

#[derive(Debug, Clone)]
pub struct Kv {
    pub key: Vec<u8>,
    pub ty: u32,
    pub val: Val,
}

#[derive(Debug, Clone)]
pub struct TensorRec {
    pub name: Vec<u8>,
    /// As on disk: innermost first.
    pub dims: Vec<u64>,
    pub ty: u32,
    pub offset: u64,
}

/// A parsed GGUF file; [`Doc::to_bytes`] writes it back (byte-identical for a file
/// written with 32-byte alignment).
#[derive(Debug, Clone)]
pub struct Doc {
    pub version: u32,
    pub kvs: Vec<Kv>,
    pub tensors: Vec<TensorRec>,
    /// Everything from the data offset on.
    pub data: Vec<u8>,
}

/// A number in the header: its position, width (4 or 8 bytes) and what it is.
#[derive(Debug, Clone)]
pub struct Field {
    pub pos: usize,
    pub size: usize,
    pub what: String,
}

struct Cursor<'a> {
    b: &'a [u8],
    p: usize,
    fields: Vec<Field>,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.b[self.p..self.p + n];
        self.p += n;
        s
    }
    fn num(&mut self, size: usize, what: String) -> u64 {
        self.fields.push(Field {
            pos: self.p,
            size,
            what,
        });
        let mut a = [0u8; 8];
        a[..size].copy_from_slice(self.take(size));
        u64::from_le_bytes(a)
    }
    fn string(&mut self, what: String) -> Vec<u8> {
        let n = self.num(8, what) as usize;
        self.take(n).to_vec()
    }
    fn value(&mut self, ty: u32, key: &str) -> Val {
        match ty {
            8 => Val::Str(self.string(format!("string length of {key}"))),
            9 => {
                let et = self.num(4, format!("element type of {key}")) as u32;
                let n = self.num(8, format!("element count of {key}"));
                Val::Array(et, (0..n).map(|_| self.value(et, key)).collect())
            }
            _ => {
                let size = match ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    _ => 8,
                };
                if size >= 4 {
                    self.fields.push(Field {
                        pos: self.p,
                        size,
                        what: format!("value of {key}"),
                    });
                }
                Val::Raw(self.take(size).to_vec())
            }
        }
    }
}

/// Parses a well-formed GGUF file (the test's own fixtures; panics on anything else).
pub fn parse(b: &[u8]) -> (Doc, Vec<Field>) {
    let mut c = Cursor {
        b,
        p: 4,
        fields: vec![],
    };
    let version = c.num(4, "version".into()) as u32;
    let nt = c.num(8, "tensor count".into());
    let nk = c.num(8, "metadata count".into());
    let mut kvs = vec![];
    for _ in 0..nk {
        let key = c.string("key length".into());
        let k = String::from_utf8_lossy(&key).into_owned();
        let ty = c.num(4, format!("type of {k}")) as u32;
        let val = c.value(ty, &k);
        kvs.push(Kv { key, ty, val });
    }
    let mut tensors = vec![];
    for _ in 0..nt {
        let name = c.string("tensor name length".into());
        let n = String::from_utf8_lossy(&name).into_owned();
        let nd = c.num(4, format!("n_dims of {n}"));
        let dims = (0..nd)
            .map(|d| c.num(8, format!("dim {d} of {n}")))
            .collect();
        let ty = c.num(4, format!("ggml type of {n}")) as u32;
        let offset = c.num(8, format!("offset of {n}"));
        tensors.push(TensorRec {
            name,
            dims,
            ty,
            offset,
        });
    }
    let data_start = c.p.div_ceil(32) * 32;
    let doc = Doc {
        version,
        kvs,
        tensors,
        data: b[data_start..].to_vec(),
    };
    (doc, c.fields)
}

fn put_val(out: &mut Vec<u8>, v: &Val) {
    match v {
        Val::Raw(b) => out.extend(b),
        Val::Str(s) => {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s);
        }
        Val::Array(et, items) => {
            out.extend(et.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for i in items {
                put_val(out, i);
            }
        }
    }
}

impl Doc {
    /// Writes the file: header, padding to 32 bytes, data.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.kvs.len() as u64).to_le_bytes());
        for kv in &self.kvs {
            put_val(&mut out, &Val::Str(kv.key.clone()));
            out.extend(kv.ty.to_le_bytes());
            put_val(&mut out, &kv.val);
        }
        for t in &self.tensors {
            put_val(&mut out, &Val::Str(t.name.clone()));
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.ty.to_le_bytes());
            out.extend(t.offset.to_le_bytes());
        }
        out.resize(out.len().div_ceil(32) * 32, 0);
        out.extend(&self.data);
        out
    }

    /// Sets `key` to `(ty, val)`, adding it when missing.
    pub fn set(&mut self, key: &str, (ty, val): (u32, Val)) {
        match self.kvs.iter_mut().find(|kv| kv.key == key.as_bytes()) {
            Some(kv) => {
                kv.ty = ty;
                kv.val = val;
            }
            None => self.kvs.push(Kv {
                key: key.as_bytes().to_vec(),
                ty,
                val,
            }),
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.kvs.retain(|kv| kv.key != key.as_bytes());
    }

    pub fn tensor(&mut self, name: &str) -> &mut TensorRec {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name.as_bytes())
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }

    /// Bytes of magic, counts, metadata and tensor infos.
    pub fn header_len(&self) -> usize {
        self.to_bytes().len() - self.data.len()
    }
}
