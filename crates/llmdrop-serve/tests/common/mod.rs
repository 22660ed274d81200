//! What the server tests share: a real server on an ephemeral loopback port with a tiny
//! fixture model, and a small HTTP/1.1 client over a plain socket (so that tests can send
//! exactly the bytes they mean, malformed ones included, and read the raw SSE frames).

// Each test binary compiles its own copy of this module and uses part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use llmdrop::pipeline::ModelOptions;
use llmdrop::DropPlan;
use llmdrop_serve::{Limits, Model, ServeOptions, Server, ShutdownHandle};
use serde_json::Value;

/// The committed tiny llama (HF safetensors + tokenizer.json, PyTorch reference logits).
pub fn tiny_llama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny/llama")
}

/// A ChatML template (as SmolLM2's).
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A copy of the tiny llama with a chat template in tokenizer_config.json.
pub fn tiny_llama_with_template(dir: &Path) -> PathBuf {
    let out = dir.join("llama-chat");
    std::fs::create_dir_all(&out).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "generation_config.json",
    ] {
        std::fs::copy(tiny_llama().join(f), out.join(f)).unwrap();
    }
    let cfg = serde_json::json!({"chat_template": CHATML});
    std::fs::write(out.join("tokenizer_config.json"), cfg.to_string()).unwrap();
    out
}

/// Limits small enough to cross in a test.
pub fn test_limits() -> Limits {
    Limits {
        max_body_bytes: 64 << 10,
        max_prompts: 16,
        max_request_tokens: 2048,
        queue: 64,
    }
}

/// A running server; stopped (and joined) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<Result<(), llmdrop_serve::ServeError>>>,
}

impl TestServer {
    pub fn start(model: &Path) -> Self {
        Self::start_with(model, &DropPlan::empty(), test_limits())
    }

    pub fn start_with(model: &Path, plan: &DropPlan, limits: Limits) -> Self {
        Self::start_options(&ModelOptions::new(model), plan, limits)
    }

    /// A server on the model `opts` names, loaded as they say (dtype).
    pub fn start_options(opts: &ModelOptions, plan: &DropPlan, limits: Limits) -> Self {
        let m = Model::load(opts, plan).expect("loading the model");
        let opts = ServeOptions {
            port: 0,
            limits,
            drain_timeout: Duration::from_secs(20),
            ..ServeOptions::default()
        };
        let server = Server::bind(m, opts).expect("binding");
        let addr = server.local_addr();
        let handle = server.shutdown_handle();
        let thread = Some(std::thread::spawn(move || server.run()));
        Self {
            addr,
            handle,
            thread,
        }
    }

    /// Stops the server and waits for it to return.
    pub fn stop(&mut self) -> Result<(), llmdrop_serve::ServeError> {
        self.handle.shutdown();
        match self.thread.take() {
            Some(t) => t.join().expect("the server thread panicked"),
            None => Ok(()),
        }
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, b"")
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        request(self.addr, "POST", path, body.to_string().as_bytes())
    }

    pub fn post_raw(&self, path: &str, body: &[u8]) -> Response {
        request(self.addr, "POST", path, body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A response: status, headers (names lower-cased) and the body (de-chunked).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON of an OK response (panics with the body otherwise).
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, 200, "{}", self.text());
        self.json()
    }

    /// Checks an OpenAI error object with `status`; returns its message.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        let v = self.json();
        let e = &v["error"];
        assert!(e["message"].is_string(), "{v}");
        assert!(e["type"].is_string(), "{v}");
        assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
        e["message"].as_str().unwrap().to_string()
    }

    /// The `data:` payloads of an SSE body, checking the framing: every event is one
    /// `data: ` line followed by a blank line, and the last is `[DONE]`.
    pub fn sse(&self) -> Vec<Value> {
        assert_eq!(self.status, 200, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("text/event-stream"));
        let text = self.text();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text:?}");
        let events: Vec<&str> = text.trim_end_matches("\n\n").split("\n\n").collect();
        let mut out = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let payload = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event {i} is not a data line: {e:?}"));
            assert!(!payload.contains('\n'), "event {i} spans lines: {e:?}");
            if i + 1 == events.len() {
                assert_eq!(payload, "[DONE]");
            } else {
                out.push(serde_json::from_str(payload).unwrap());
            }
        }
        out
    }
}

/// A POST of `body` to `path` on a fresh connection, the answer not read yet: requests that
/// must be in flight together.
pub fn send_post(addr: SocketAddr, path: &str, body: &Value) -> TcpStream {
    let body = body.to_string();
    let mut c = TcpStream::connect(addr).expect("connecting");
    c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(body.as_bytes()).unwrap();
    c
}

/// One request on a fresh connection (`Connection: close`); the response read to the end.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connecting");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // the server may answer (413) and close before reading everything
    let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body));
    read_response(&mut s)
}

/// Reads a whole HTTP/1.1 response from `s`.
pub fn read_response(s: &mut impl Read) -> Response {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("reading the response");
    parse_response(&raw)
}

/// Parses the bytes of a whole HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_str = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        b = &b[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// The committed reference: token ids and PyTorch's f32 logits `[2, 24, 256]`.
pub fn reference() -> (Vec<Vec<u32>>, Vec<Vec<Vec<f32>>>) {
    let dir = tiny_llama();
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ref.json")).unwrap()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(r["ids"].clone()).unwrap();
    let shape: Vec<usize> = serde_json::from_value(r["logits_shape"].clone()).unwrap();
    let bytes = std::fs::read(dir.join("ref_logits.f32")).unwrap();
    let flat: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (b, t, v) = (shape[0], shape[1], shape[2]);
    assert_eq!(flat.len(), b * t * v);
    let logits = (0..b)
        .map(|i| {
            (0..t)
                .map(|j| flat[(i * t + j) * v..(i * t + j + 1) * v].to_vec())
                .collect()
        })
        .collect();
    (ids, logits)
}

/// `log_softmax(row)[i]` in f64.
pub fn log_softmax_at(row: &[f32], i: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    row[i] as f64 - max - sum.ln()
}
