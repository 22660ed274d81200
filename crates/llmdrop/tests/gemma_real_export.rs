//! HF exports of Gemma-3-270M's Q4_K_M GGUF: `hf` (blocks dropped, one of them global) and
//! `hf-llmdrop` reload as the pruned model (the export's own check, max |Δlogit| ≤ 1e-4,
//! with the norms written as HF's `w` from GGUF's `w + 1`), with every kept layer's kind.
//! The `tokenizer.json` they write for the GGUF SentencePiece vocabulary, read back by the `tokenizers` crate, gives the ids of llmdrop's own SPM
//! tokenizer (which equals llama.cpp's: tokenizer_spm.rs) on the docutils documentation
//! (≥ 1 MB: digits, code, non-ASCII) and on special and edge strings (tests/fixtures/gemma3/
//! tokens.json), specials parsed and not; tokenizer_config.json carries Gemma's conventions.
//! Needs the Gemma GGUF in the asset cache (`scripts/fetch-assets.sh`): real-model group.

mod export_common;

use std::path::Path;
use std::time::Instant;

use export_common::run;
use llmdrop::export::ExportFormat;
use llmdrop::DropPlan;

use llmdrop::export::write_tokenizer_files;
use llmdrop::{ModelSource, Tokenizer};
use llmdrop_testkit as testkit;
use serde_json::Value;

/// Gemma's GGUF tokenizer and the one read back from the exported files in `dir`.
fn exported(dir: &Path) -> (Tokenizer, Tokenizer) {
    let src = ModelSource::open(&testkit::gemma_model()).unwrap();
    let tok = src.tokenizer().unwrap();
    let t = Instant::now();
    write_tokenizer_files(&src, &tok, dir).unwrap();
    eprintln!("tokenizer files written and checked in {:?}", t.elapsed());
    let hf = Tokenizer::from_hf_dir(dir, tok.bos, tok.eos.clone()).unwrap();
    assert!(hf.hf().is_some());
    (tok, hf)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn gemma_tokenizer_json_matches_llmdrop_spm_on_documentation_and_edge_strings() {
    let tmp = tempfile::tempdir().unwrap();
    let (spm_tok, hf_tok) = exported(tmp.path());
    let spm = spm_tok.spm().unwrap();
    let mut hf = hf_tok.hf().unwrap().clone();
    // the documentation, file by file
    let dir = testkit::english_text_dir().join("docs");
    let r = json(&testkit::fixtures_dir().join("gemma3/tokens.json"));
    let mut bytes = 0;
    let t = Instant::now();
    for f in r["files"].as_array().unwrap() {
        let name = f["file"].as_str().unwrap();
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        bytes += text.len();
        let want = spm_tok.encode(&text).unwrap();
        assert_eq!(hf_tok.encode(&text).unwrap(), want, "{name}");
        assert_eq!(hf_tok.decode(&want, false).unwrap(), text, "{name}: decode");
    }
    eprintln!("{bytes} bytes compared in {:?}", t.elapsed());
    assert!(bytes >= 1_000_000, "only {bytes} bytes compared");
    // edge strings (specials written as text) and special strings, both ways
    let mut texts: Vec<String> = ["strings", "special"]
        .iter()
        .flat_map(|k| r[k].as_array().unwrap().iter())
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    texts.extend(
        [
            "",
            " ",
            "\n",
            "<bos>Hello<eos>",
            "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
            "<unused5><mask><pad><unk>[multimodal]",
            "<table><tr><td>1</td></tr></table>  \t\t  x",
            "a\u{0}b\u{7f}c\u{ffff}\u{10ffff}",
            "▁▁ ▁x",
            "<0x41><start_of_image>",
        ]
        .map(String::from),
    );
    for text in &texts {
        for parse_special in [true, false] {
            hf.set_encode_special_tokens(!parse_special);
            let got = hf.encode(text.as_str(), false).unwrap().get_ids().to_vec();
            let want = spm.encode(text, parse_special).unwrap();
            assert_eq!(got, want, "{text:?} (specials parsed: {parse_special})");
        }
        // a prompt starts with BOS, from tokenizer_config.json's add_bos_token
        assert_eq!(
            hf_tok.encode_prompt(text).unwrap(),
            spm_tok.encode_prompt(text).unwrap()
        );
    }
}

#[test]
fn gemma_tokenizer_config_carries_the_gguf_conventions() {
    let tmp = tempfile::tempdir().unwrap();
    exported(tmp.path());
    let tc = json(&tmp.path().join("tokenizer_config.json"));
    assert_eq!(tc["add_bos_token"], true);
    assert_eq!(tc["add_eos_token"], false);
    assert_eq!(tc["bos_token"], "<bos>");
    assert_eq!(tc["eos_token"], "<eos>");
    assert_eq!(tc["unk_token"], "<unk>");
    assert_eq!(tc["pad_token"], "<pad>");
    let tj = json(&tmp.path().join("tokenizer.json"));
    assert_eq!(tj["model"]["type"], "BPE");
    assert_eq!(tj["model"]["byte_fallback"], true);
    assert_eq!(tj["model"]["vocab"].as_object().unwrap().len(), 262_144);
    assert_eq!(
        tj["post_processor"]["single"][0]["SpecialToken"]["id"],
        "<bos>"
    );
}

/// Blocks 3 and 5 (5 is global) dropped as `hf`: the renumbered config lists the kept
/// layers' kinds (global at 9 and 15, once 11 and 17); attention 8-10 + MLP 15 as
/// `hf-llmdrop`: all 18 kinds, the lists. Both pass the export's reload check.
#[test]
fn gemma_hf_exports_reload_as_the_pruned_model() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::gemma_model();
    let t = Instant::now();
    let plan = DropPlan::new([3, 5], [3, 5]);
    let (r, out) = run(
        &model,
        &plan,
        ExportFormat::Hf,
        None,
        &tmp.path().join("hf"),
    )
    .unwrap();
    eprintln!(
        "hf: max |Δlogit| {:e} ({:?})",
        r.reload_max_abs_diff,
        t.elapsed()
    );
    assert!(r.reload_max_abs_diff <= 1e-4);
    let c = json(&r.path.join("config.json"));
    let kinds: Vec<&str> = (0..16)
        .map(|i| out.config().attn_kind(i).hf_name())
        .collect();
    let global: Vec<usize> = (0..16).filter(|&i| kinds[i] == "full_attention").collect();
    assert_eq!(global, [9, 15]);
    assert_eq!(c["layer_types"], serde_json::json!(kinds));
    assert_eq!(c["architectures"][0], "Gemma3ForCausalLM");
    assert_eq!(c["hidden_activation"], "gelu_pytorch_tanh");
    assert_eq!(c["query_pre_attn_scalar"], 256);
    assert_eq!(c["sliding_window"], 512);
    assert_eq!(c["rope_local_base_freq"], 10000.0);
    assert_eq!(c["rope_parameters"]["full_attention"]["rope_theta"], 1e6);
    assert!(r.path.join("tokenizer.json").exists());
    drop(out);
    std::fs::remove_dir_all(&r.path).unwrap();
    let t = Instant::now();
    let plan = DropPlan::new([8, 9, 10], [15]);
    let dest = tmp.path().join("llmdrop");
    let (r, out) = run(&model, &plan, ExportFormat::HfLlmdrop, None, &dest).unwrap();
    eprintln!(
        "hf-llmdrop: max |Δlogit| {:e} ({:?})",
        r.reload_max_abs_diff,
        t.elapsed()
    );
    assert!(r.reload_max_abs_diff <= 1e-4);
    assert_eq!(out.stored_plan(), &plan);
    let c = json(&r.path.join("config.json"));
    assert_eq!(c["layer_types"].as_array().unwrap().len(), 18);
    assert_eq!(c["drop_attn_list"], serde_json::json!([8, 9, 10]));
}

/// GGUF: six consecutive blocks (one global among them) or trailing blocks keep every kept
/// layer's kind where llama.cpp puts it (index % 6 == 5 global), and the file, its Q4_K /
/// Q6_K blocks and norms copied as stored, reloads as the pruned model bit for bit (the
/// export's own check: lossless, max |Δlogit| 0 here). One dropped block shifts a global
/// layer to a sliding index: refused, nothing written. (llama.cpp itself runs these files:
/// scripts/cross/check_gemma_gguf.py.)
#[test]
fn gemma_gguf_exports_keep_llama_cpp_layer_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::gemma_model();
    for (name, blocks) in [
        ("period", (6..12).collect::<Vec<_>>()),
        ("tail", vec![16, 17]),
    ] {
        let plan = DropPlan::new(blocks.clone(), blocks);
        let dest = tmp.path().join(format!("{name}.gguf"));
        let (r, out) = run(&model, &plan, ExportFormat::Gguf, None, &dest).unwrap();
        assert!(r.lossless, "{name}");
        assert_eq!(r.reload_max_abs_diff, 0.0, "{name}");
        let cfg = out.config();
        assert_eq!(cfg.num_layers, 18 - plan.attn.len(), "{name}");
        let globals: Vec<usize> = (0..cfg.num_layers)
            .filter(|&i| cfg.attn_kind(i) == llmdrop::config::AttnKind::Full)
            .collect();
        // 12 and 16 layers: globals at 5 and 11 (old 5 and 17, or 5 and 11)
        assert_eq!(globals, [5, 11], "{name}");
    }
    let dest = tmp.path().join("shifted.gguf");
    let e = run(
        &model,
        &DropPlan::new([3], [3]),
        ExportFormat::Gguf,
        None,
        &dest,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("layer 5 (full_attention) would be layer 4"),
        "{e}"
    );
    assert!(!dest.exists());
}
