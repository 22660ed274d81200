//! The tokenizer built from the default GGUF's metadata gives exactly llama.cpp's ids
//! (llama-cpp-python, recorded by scripts/fixtures/make_fixtures.py) on 1.3 MB of real
//! English documentation with digits and code, and on hand-picked strings.

use llmdrop::io::sha256_bytes;
use llmdrop::ModelSource;
use llmdrop_testkit as testkit;
use serde_json::Value;

fn reference() -> Value {
    let p = testkit::fixtures_dir().join("tokenizer/ref.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids_sha(ids: &[u32]) -> String {
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    sha256_bytes(&bytes)
}

#[test]
fn gguf_tokenizer_matches_llama_cpp_on_strings() {
    let src = ModelSource::open(&testkit::default_model()).unwrap();
    let tok = src.tokenizer().unwrap();
    assert!(!tok.add_bos, "the default GGUF does not ask for BOS");
    for s in reference()["strings"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(s["ids"].clone()).unwrap();
        if text.contains("<|im_start|>") {
            continue; // llama.cpp's parse_special=false treats control tokens as text
        }
        assert_eq!(tok.encode(text).unwrap(), want, "{text:?}");
    }
}

#[test]
fn gguf_tokenizer_matches_llama_cpp_on_english_documentation() {
    let src = ModelSource::open(&testkit::default_model()).unwrap();
    let tok = src.tokenizer().unwrap();
    let dir = testkit::english_text_dir().join("docs");
    let r = reference();
    let files = r["files"].as_array().unwrap();
    let mut bytes = 0;
    let mut mismatched = Vec::new();
    for f in files {
        let name = f["file"].as_str().unwrap();
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(
            text.len() as u64,
            f["bytes"].as_u64().unwrap(),
            "{name}: text differs"
        );
        bytes += text.len();
        let ids = tok.encode(&text).unwrap();
        if ids_sha(&ids) != f["ids_sha256"].as_str().unwrap() {
            mismatched.push(format!("{name} ({} ids vs {})", ids.len(), f["tokens"]));
        }
    }
    assert!(bytes >= 1_000_000, "only {bytes} bytes compared");
    assert!(
        mismatched.is_empty(),
        "ids differ from llama.cpp for: {mismatched:?}"
    );
}
