//! The algorithm on hand-made vocabularies: score order, ties, byte fallback, specials.

use super::*;

/// A hand-made vocabulary: (piece, score, kind).
fn tiny(add_space_prefix: bool, with_bytes: bool) -> SpmTokenizer {
    let mut v: Vec<(String, f32, TokenKind)> = vec![
        ("<unk>".into(), 0.0, TokenKind::Unknown),
        ("<s>".into(), 0.0, TokenKind::Control),
        ("</s>".into(), 0.0, TokenKind::Control),
        ("<ud>".into(), 0.0, TokenKind::UserDefined),
    ];
    for (p, s) in [
        ("▁", -1.0),
        ("a", -2.0),
        ("b", -2.0),
        ("c", -2.0),
        ("ab", -5.0),
        ("bc", -3.0), // bc beats ab in "abc"
        ("▁a", -4.0),
        ("▁ab", -6.0),
        ("aa", -7.0), // equal scores: the leftmost pair merges first
        ("é", -2.0),
        ("<s", -9.0), // pieces can spell a control token's text
        ("<", -3.0),
        ("s", -3.0),
        (">", -3.0),
    ] {
        v.push((p.into(), s, TokenKind::Normal));
    }
    if with_bytes {
        for b in 0..=255u8 {
            v.push((format!("<0x{b:02X}>"), 0.0, TokenKind::Byte));
        }
    }
    let (p, rest): (Vec<_>, Vec<_>) = v.into_iter().map(|(p, s, k)| (p, (s, k))).unzip();
    let (s, k) = rest.into_iter().unzip();
    SpmTokenizer::new(
        p.iter().map(String::as_str),
        s,
        k,
        Some(0),
        add_space_prefix,
    )
    .unwrap()
}

fn pieces(t: &SpmTokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&i| t.piece(i).unwrap().to_string())
        .collect()
}

#[test]
fn the_highest_score_merges_first() {
    let t = tiny(false, true);
    // "abc": bc (-3) beats ab (-5), then a + bc is no piece
    assert_eq!(pieces(&t, &t.encode("abc", false).unwrap()), ["a", "bc"]);
    // "ab": the only pair
    assert_eq!(pieces(&t, &t.encode("ab", false).unwrap()), ["ab"]);
    // " ab": ▁a (-4) beats ab (-5), then ▁a + b = ▁ab
    assert_eq!(pieces(&t, &t.encode(" ab", false).unwrap()), ["▁ab"]);
}

#[test]
fn equal_scores_merge_the_leftmost_pair() {
    let t = tiny(false, true);
    assert_eq!(pieces(&t, &t.encode("aaa", false).unwrap()), ["aa", "a"]);
    assert_eq!(
        pieces(&t, &t.encode("aaaaa", false).unwrap()),
        ["aa", "aa", "a"]
    );
}

#[test]
fn unknown_characters_fall_back_to_bytes_or_unk() {
    let t = tiny(false, true);
    // 'ü' = C3 BC, not a piece; 'é' is one
    let ids = t.encode("üé", false).unwrap();
    assert_eq!(pieces(&t, &ids), ["<0xC3>", "<0xBC>", "é"]);
    assert_eq!(t.decode(&ids, false, None).unwrap(), "üé");
    let t = tiny(false, false);
    assert_eq!(
        pieces(&t, &t.encode("üa", false).unwrap()),
        ["<unk>", "<unk>", "a"]
    );
}

#[test]
fn space_prefix_only_when_asked() {
    let t = tiny(true, true);
    assert_eq!(pieces(&t, &t.encode("ab", false).unwrap()), ["▁ab"]);
    // after a special token the next fragment gets the prefix again
    assert_eq!(
        pieces(&t, &t.encode("ab<s>ab", true).unwrap()),
        ["▁ab", "<s>", "▁ab"]
    );
    let ids = t.encode("ab", false).unwrap();
    assert_eq!(t.decode(&ids, false, None).unwrap(), "ab");
    assert!(t.encode("", false).unwrap().is_empty());
}

#[test]
fn specials_split_only_when_parsing_them_user_defined_always() {
    let t = tiny(false, true);
    // a control token written in text is text when not parsing specials ('/' is no piece)
    assert_eq!(
        pieces(&t, &t.encode("a</s>b", false).unwrap()),
        ["a", "<", "<0x2F>", "s", ">", "b"]
    );
    assert_eq!(
        pieces(&t, &t.encode("a</s>b", true).unwrap()),
        ["a", "</s>", "b"]
    );
    // ... but merges may still spell it, as in llama.cpp: "<s" (-9) + ">" = "<s>"
    assert_eq!(
        pieces(&t, &t.encode("a<s>b", false).unwrap()),
        ["a", "<s>", "b"]
    );
    // "</s>" is longer than "<s>": matched first
    assert_eq!(
        pieces(&t, &t.encode("</s><s>", true).unwrap()),
        ["</s>", "<s>"]
    );
    // user-defined: always one token
    assert_eq!(
        pieces(&t, &t.encode("a<ud>a<ud>", false).unwrap()),
        ["a", "<ud>", "a", "<ud>"]
    );
}

#[test]
fn decode_round_trips_and_drops_control_tokens() {
    let t = tiny(false, true);
    let text = "ab cab 日本 <ud> a";
    let ids = t.encode(text, false).unwrap();
    assert_eq!(t.decode(&ids, false, None).unwrap(), text);
    let ids = t.encode("<s>a b</s>", true).unwrap();
    assert_eq!(t.decode(&ids, false, Some(1)).unwrap(), "a b");
    assert_eq!(t.decode(&ids, true, Some(1)).unwrap(), "<s>a b</s>");
    assert!(t.decode(&[9999], false, None).is_err());
}

#[test]
fn a_long_text_finds_specials_through_the_window_filter() {
    let t = tiny(false, true);
    let long = format!("{}</s>{}", "ab ".repeat(2000), "c".repeat(10));
    let ids = t.encode(&long, true).unwrap();
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 1);
    assert_eq!(t.decode(&ids, true, None).unwrap(), long);
}

#[test]
fn bad_vocabularies_are_refused() {
    let k = vec![TokenKind::Normal; 2];
    let dup = SpmTokenizer::new(["a", "a"], vec![0.0; 2], k.clone(), None, false);
    assert!(dup.err().unwrap().contains("repeats"));
    assert!(SpmTokenizer::new(["a", "b"], vec![0.0; 1], k.clone(), None, false).is_err());
    // empty pieces stay distinct and never match, as in llama.cpp
    let t = SpmTokenizer::new(["", ""], vec![0.0; 2], k, None, false).unwrap();
    assert_eq!(t.piece(1), Some("[EMPTY_1]"));
    assert_eq!(t.token_id(""), None);
}

#[test]
fn the_piece_table_finds_every_piece_of_a_large_vocabulary() {
    let pieces: Vec<String> = (0..50_000).map(|i| format!("p{i}")).collect();
    let n = pieces.len();
    let t = SpmTokenizer::new(
        pieces.iter().map(String::as_str),
        vec![0.0; n],
        vec![TokenKind::Normal; n],
        None,
        false,
    )
    .unwrap();
    for (i, p) in pieces.iter().enumerate() {
        assert_eq!(t.token_id(p), Some(i as u32));
    }
    assert_eq!(t.token_id("p50000"), None);
    assert_eq!(t.piece(50_000), None);
}

/// The converted `tokenizer.json`, read by the `tokenizers` crate, gives the same ids on
/// strings that exercise score order, ties, byte fallback, the prefix space and specials
/// (parsed, and written as text).
#[test]
fn the_converted_tokenizer_json_gives_the_same_ids() {
    let texts = [
        "abc",
        "aaa",
        "aaaa",
        "a b c",
        " abc",
        "  a",
        "ab ab",
        "▁a",
        "bcbc",
        "é",
        "zé",
        "日本",
        "<s>ab</s>",
        "<ud>aa<ud>",
        "<s",
        "ab <s>c",
        "x<unk>y",
        "",
        " ",
        "\n\tz",
    ];
    for prefix in [false, true] {
        let t = tiny(prefix, true);
        let ends = hf_json::SpecialEnds {
            bos: Some(1),
            add_bos: true,
            eos: Some(2),
            add_eos: false,
        };
        let mut hf: tokenizers::Tokenizer =
            serde_json::from_value(t.hf_tokenizer_json(ends)).unwrap();
        for parse_special in [true, false] {
            hf.set_encode_special_tokens(!parse_special);
            for s in texts {
                let want = t.encode(s, parse_special).unwrap();
                let got = hf.encode(s, false).unwrap().get_ids().to_vec();
                assert_eq!(
                    got, want,
                    "{s:?} (prefix {prefix}, specials {parse_special})"
                );
                // the post-processor adds BOS only
                let with = hf.encode(s, true).unwrap().get_ids().to_vec();
                assert_eq!(with, [&[1][..], &want].concat(), "{s:?}");
            }
        }
        // decoding gives the text back (without the prefix space)
        let ids = t.encode("ab zé c", true).unwrap();
        assert_eq!(hf.decode(&ids, true).unwrap(), "ab zé c");
    }
}

/// Without byte tokens, an ASCII character outside the vocabulary is one unknown token in
/// both (not fused with its neighbours).
#[test]
fn the_converted_tokenizer_json_without_byte_tokens_gives_one_unknown_per_character() {
    let t = tiny(false, false);
    let hf: tokenizers::Tokenizer =
        serde_json::from_value(t.hf_tokenizer_json(hf_json::SpecialEnds::default())).unwrap();
    for s in ["zz", "azqz", "a<s>zq"] {
        let want = t.encode(s, true).unwrap();
        assert_eq!(hf.encode(s, false).unwrap().get_ids(), want, "{s:?}");
    }
    assert_eq!(t.encode("zz", true).unwrap(), [0, 0]);
}
