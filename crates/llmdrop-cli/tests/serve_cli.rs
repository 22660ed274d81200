//! `llmdrop serve` as a process: it prints where it listens, answers, and on SIGTERM /
//! SIGINT finishes its open requests, then exits 143 / 130.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn tiny_llama() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny/llama")
}

/// Starts `llmdrop --json serve --port 0 ARGS`; returns the child and its address.
fn start(args: &[&str]) -> (Child, String) {
    let model = tiny_llama();
    let mut cmd = common::command(&["--json", "serve", "--port", "0", "--model"]);
    cmd.arg(&model)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // the JSON document on stdout names the address
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut doc = String::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "serve ended early: {doc}"
        );
        doc.push_str(&line);
        if line.starts_with('}') {
            break;
        }
    }
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(v["kind"], "serve");
    let addr = v["address"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    (child, addr)
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn kill(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn serve_answers_then_drains_on_signals() {
    for (signal, code) in [("-TERM", 143), ("-INT", 130)] {
        let (child, addr) = start(&["--drop-attn", "1"]);
        assert!(http(&addr, "GET", "/health", "").starts_with("HTTP/1.1 200"));
        let models = http(&addr, "GET", "/v1/models", "");
        assert!(models.contains("\"drop_attn\":[1]"), "{models}");
        // a long stream is open when the signal comes: it still ends properly
        let mut s = TcpStream::connect(&addr).unwrap();
        let body = r#"{"prompt": [5, 6, 7], "max_tokens": 200, "stream": true, "ignore_eos": true, "temperature": 0}"#;
        write!(s, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut first = [0u8; 16];
        s.read_exact(&mut first).unwrap();
        kill(&child, signal);
        let mut rest = String::new();
        s.read_to_string(&mut rest).unwrap();
        assert!(rest.contains("data: [DONE]"), "{rest}");
        assert!(rest.contains("\"finish_reason\":\"length\""));
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{signal}: {err}");
        assert!(err.contains("draining"), "{err}");
    }
}

#[test]
fn serve_refuses_bad_arguments() {
    let r = common::run(&["serve", "--port", "99999"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = common::run(&["serve", "--host", "not-an-ip"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let m = tiny_llama();
    let m = m.to_str().unwrap();
    let r = common::run(&["serve", "--model", m, "--pruned", m]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
    let r = common::run(&["serve", "--model", m, "--drop-attn", "7"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}
