//! Character-level tokenizer: token id = rank of the character in the sorted vocabulary.

use std::collections::{BTreeSet, HashMap};

use crate::error::DataError;

/// The JSON key that marks a character-level `tokenizer.json`.
pub const KIND_KEY: &str = "ember_char_tokenizer";

/// One token per character of a fixed, sorted alphabet, and optionally an end-of-text token
/// (the id after the characters') for corpora of several documents.
#[derive(Debug, Clone, PartialEq)]
pub struct CharTokenizer {
    chars: Vec<char>,
    ids: HashMap<char, u32>,
    eos: Option<String>,
}

impl CharTokenizer {
    /// The vocabulary of `text`: its distinct characters, sorted by code point.
    pub fn from_text(text: &str) -> Self {
        let set: BTreeSet<char> = text.chars().collect();
        Self::from_chars(set.into_iter().collect())
    }

    /// The vocabulary of a corpus whose distinct characters are `chars`, with the end-of-text
    /// token `eos` (spelt as it decodes) after them, if given.
    pub fn from_alphabet(chars: BTreeSet<char>, eos: Option<&str>) -> Self {
        Self {
            eos: eos.map(str::to_string),
            ..Self::from_chars(chars.into_iter().collect())
        }
    }

    fn from_chars(chars: Vec<char>) -> Self {
        let ids = chars.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        Self { chars, ids, eos: None }
    }

    /// Number of ids: the characters, and the end-of-text token if there is one.
    pub fn vocab_size(&self) -> usize {
        self.chars.len() + usize::from(self.eos.is_some())
    }

    /// The id of `token`: a character's, or the end-of-text token's.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        if self.eos.as_deref() == Some(token) {
            return Some(self.chars.len() as u32);
        }
        let mut chars = token.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => self.ids.get(&c).copied(),
            _ => None,
        }
    }

    /// Token ids of `text`; every character must be in the vocabulary.
    pub fn encode(&self, text: &str, what: &str) -> Result<Vec<u32>, DataError> {
        let mut ids = Vec::with_capacity(text.len());
        let mut unknown = BTreeSet::new();
        for c in text.chars() {
            match self.ids.get(&c) {
                Some(&id) => ids.push(id),
                None => {
                    unknown.insert(c);
                }
            }
        }
        if unknown.is_empty() {
            return Ok(ids);
        }
        let shown: Vec<String> = unknown.iter().take(10).map(|c| format!("{c:?}")).collect();
        Err(DataError::UnknownCharacters {
            what: what.to_string(),
            count: unknown.len(),
            chars: shown.join(" "),
        })
    }

    /// Text of `ids`; the end-of-text id decodes to its token, ids outside the vocabulary
    /// become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut text = String::with_capacity(ids.len());
        for &i in ids {
            match (self.chars.get(i as usize), &self.eos) {
                (Some(&c), _) => text.push(c),
                (None, Some(eos)) if i as usize == self.chars.len() => text.push_str(eos),
                _ => text.push('\u{FFFD}'),
            }
        }
        text
    }

    /// `{"ember_char_tokenizer": 1, "vocab": "<the characters in id order>"}`, and
    /// `"eos": "<|endoftext|>"` when there is an end-of-text token.
    pub fn to_json(&self) -> String {
        let vocab: String = self.chars.iter().collect();
        match &self.eos {
            None => serde_json::json!({ KIND_KEY: 1, "vocab": vocab }).to_string(),
            Some(eos) => serde_json::json!({ KIND_KEY: 1, "vocab": vocab, "eos": eos }).to_string(),
        }
    }

    /// Parses [`to_json`](Self::to_json)'s output.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        if value[KIND_KEY] != 1 {
            return Err(format!("unsupported character tokenizer version {}", value[KIND_KEY]));
        }
        let vocab = value["vocab"].as_str().ok_or("the \"vocab\" string is missing")?;
        let chars: Vec<char> = vocab.chars().collect();
        let distinct: BTreeSet<char> = chars.iter().copied().collect();
        if chars.is_empty() || distinct.len() != chars.len() {
            return Err("the \"vocab\" characters must be non-empty and distinct".into());
        }
        let eos = match value.get("eos") {
            None => None,
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => return Err("\"eos\" must be a non-empty string".into()),
        };
        Ok(Self {
            eos,
            ..Self::from_chars(chars)
        })
    }

    /// The same tokenizer in the Hugging Face `tokenizers` format, which
    /// `AutoTokenizer.from_pretrained` loads: a BPE model without merges (so that every
    /// character is its own token, with this tokenizer's ids) and no pre-tokenizer, and a
    /// decoder that joins the characters back without spaces.
    pub fn to_hf_json(&self) -> String {
        let vocab: serde_json::Map<String, serde_json::Value> = self
            .chars
            .iter()
            .enumerate()
            .map(|(i, c)| (c.to_string(), serde_json::Value::from(i)))
            .collect();
        let added: Vec<serde_json::Value> = self
            .eos
            .iter()
            .map(|eos| {
                serde_json::json!({
                    "id": self.chars.len(), "content": eos, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true
                })
            })
            .collect();
        serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": null,
            "post_processor": null,
            "decoder": { "type": "Fuse" },
            "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": null,
                "continuing_subword_prefix": null,
                "end_of_word_suffix": null,
                "fuse_unk": false,
                "byte_fallback": false,
                "ignore_merges": false,
                "vocab": vocab,
                "merges": []
            }
        })
        .to_string()
    }

    /// A character-level tokenizer read from a Hugging Face `tokenizer.json` of the shape
    /// [`to_hf_json`](Self::to_hf_json) writes (a BPE model without merges over single
    /// characters, no normaliser, no pre-tokenizer, no added tokens); `None` for any other.
    pub fn from_hf(value: &serde_json::Value) -> Option<Self> {
        let model = &value["model"];
        let plain = model["type"] == "BPE"
            && model["merges"].as_array().is_some_and(|m| m.is_empty())
            && value["normalizer"].is_null()
            && value["pre_tokenizer"].is_null()
            && value["added_tokens"].as_array().is_none_or(|a| a.is_empty());
        if !plain {
            return None;
        }
        let vocab = model["vocab"].as_object()?;
        let mut by_id: Vec<Option<char>> = vec![None; vocab.len()];
        for (token, id) in vocab {
            let mut chars = token.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return None;
            };
            *by_id.get_mut(id.as_u64()? as usize)? = Some(c);
        }
        let chars: Option<Vec<char>> = by_id.into_iter().collect();
        Some(Self::from_chars(chars?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ranks_in_the_sorted_alphabet() {
        let t = CharTokenizer::from_text("hello world");
        assert_eq!(t.vocab_size(), 8); // ' ', d, e, h, l, o, r, w
        assert_eq!(t.encode("hello", "x").unwrap(), vec![3, 2, 4, 4, 5]);
        assert_eq!(t.encode(" ", "x").unwrap(), vec![0]);
        assert_eq!(t.decode(&[7, 5, 6, 4, 1]), "world");
    }

    #[test]
    fn unknown_characters_are_listed() {
        let t = CharTokenizer::from_text("abc");
        let msg = t.encode("abz!z", "the prompt").unwrap_err().to_string();
        assert!(msg.starts_with("the prompt contains 2 character(s) outside"), "{msg}");
        assert!(msg.contains("'!' 'z'"), "{msg}");
    }

    #[test]
    fn the_hugging_face_form_gives_the_same_ids_through_tokenizers_and_back() {
        let t = CharTokenizer::from_text("First Citizen:\nBefore we proceed, é ☕\t");
        let hf = t.to_hf_json();
        let tokenizer: tokenizers::Tokenizer = hf.parse().unwrap();
        let text = "Citizen: proceed ☕\n\tFirst";
        let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(ids, t.encode(text, "x").unwrap());
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
        let value: serde_json::Value = serde_json::from_str(&hf).unwrap();
        assert_eq!(CharTokenizer::from_hf(&value), Some(t));
        // A real BPE tokenizer is not mistaken for a character-level one.
        let bpe = crate::tokenizer::BpeTokenizer::train(&"the cat sat on the mat\n".repeat(30), 270).unwrap();
        assert_eq!(
            CharTokenizer::from_hf(&serde_json::from_str(&bpe.to_json()).unwrap()),
            None
        );
    }

    #[test]
    fn unicode_survives_the_json_round_trip() {
        let t = CharTokenizer::from_text("naïve café — \"quoted\"\n\tok");
        let value: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(CharTokenizer::from_json(&value).unwrap(), t);
    }
}
