//! The SentencePiece-style tokenizer built from Gemma-3-270M's GGUF (`tokenizer.ggml.model =
//! llama`, 262,144 pieces) gives exactly llama.cpp's ids (llama-cpp-python, recorded by
//! `scripts/fixtures/make_gemma3.py --only tokenizer` in tests/fixtures/gemma3/tokens.json)
//! on the docutils documentation (real English text with digits and code) and on hand-picked
//! strings (non-ASCII, whitespace runs, specials): 54 files, 1,297,742 bytes. Needs the
//! Gemma GGUF in the asset cache (`scripts/fetch-assets.sh`). The GGUF header is read through
//! a `BufReader` (candle's `Content::read` on a bare `File` takes seconds for 262k strings).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::quantized::gguf_file::Content;
use llmdrop::io::sha256_bytes;
use llmdrop::Tokenizer;
use llmdrop_testkit as testkit;
use serde_json::Value;

const GEMMA_FILE: &str = "gemma-3-270m-q4_k_m.gguf";

fn gemma_gguf() -> PathBuf {
    let p = llmdrop::assets::cache_dir().join(GEMMA_FILE);
    assert!(
        p.exists(),
        "{} not found: run scripts/fetch-assets.sh",
        p.display()
    );
    p
}

fn tokenizer() -> Tokenizer {
    let path = gemma_gguf();
    let t = Instant::now();
    let mut f = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let content = Content::read(&mut f).unwrap();
    let read = t.elapsed();
    let tok = Tokenizer::from_gguf(&content, &path).unwrap();
    eprintln!(
        "GGUF metadata read in {read:?}, tokenizer built in {:?}",
        t.elapsed() - read
    );
    tok
}

fn reference() -> Value {
    let p = testkit::fixtures_dir().join("gemma3/tokens.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids_sha(ids: &[u32]) -> String {
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    sha256_bytes(&bytes)
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn gemma_tokenizer_conventions_come_from_the_gguf() {
    let tok = tokenizer();
    assert_eq!(tok.vocab_size(), 262_144);
    assert!(tok.add_bos, "Gemma asks for BOS");
    assert_eq!((tok.bos, tok.eos.as_slice()), (Some(2), &[1][..]));
    assert!(tok.hf().is_none());
    assert_eq!(tok.id_to_token(2).as_deref(), Some("<bos>"));
    assert_eq!(tok.encode_prompt("Hello").unwrap()[0], 2);
}

#[test]
fn gemma_tokenizer_matches_llama_cpp_on_strings() {
    let tok = tokenizer();
    let spm = tok.spm().expect("a SentencePiece tokenizer");
    let r = reference();
    for s in r["strings"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        let want = ids(&s["ids"]);
        // llama.cpp's parse_special = false: control tokens are text
        assert_eq!(spm.encode(text, false).unwrap(), want, "{text:?}");
        let decoded = tok.decode(&want, false).unwrap();
        assert_eq!(decoded, text, "decode of {want:?}");
    }
    for s in r["special"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        // parse_special = true, which Tokenizer::encode does
        assert_eq!(tok.encode(text).unwrap(), ids(&s["ids"]), "{text:?}");
        assert_eq!(tok.decode(&ids(&s["ids"]), true).unwrap(), text);
    }
}

#[test]
fn gemma_tokenizer_matches_llama_cpp_on_english_documentation() {
    let tok = tokenizer();
    let spm = tok.spm().unwrap();
    let dir = testkit::english_text_dir().join("docs");
    let r = reference();
    let files = r["files"].as_array().unwrap();
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f["file"].as_str().unwrap())).unwrap())
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let t = Instant::now();
    let all: Vec<Vec<u32>> = texts
        .iter()
        .map(|x| spm.encode(x, false).unwrap())
        .collect();
    let secs = t.elapsed().as_secs_f64();
    let n: usize = all.iter().map(Vec::len).sum();
    eprintln!(
        "{bytes} bytes -> {n} tokens in {secs:.3} s ({:.2} MB/s)",
        bytes as f64 / secs / 1e6
    );
    let mut mismatched = Vec::new();
    for ((f, text), ids) in files.iter().zip(&texts).zip(&all) {
        let name = f["file"].as_str().unwrap();
        assert_eq!(
            text.len() as u64,
            f["bytes"].as_u64().unwrap(),
            "{name}: text differs"
        );
        if ids_sha(ids) != f["ids_sha256"].as_str().unwrap() {
            mismatched.push(format!("{name} ({} ids vs {})", ids.len(), f["tokens"]));
        }
        // the docs hold no special-token text: parsing specials changes nothing
        assert_eq!(&tok.encode(text).unwrap(), ids, "{name}");
        assert_eq!(&tok.decode(ids, false).unwrap(), text, "{name}: decode");
    }
    assert!(bytes >= 1_000_000, "only {bytes} bytes compared");
    assert!(
        mismatched.is_empty(),
        "ids differ from llama.cpp for: {mismatched:?}"
    );
}
