//! Character-level tokenizer: token id = rank of the character in the sorted vocabulary.

use std::collections::{BTreeSet, HashMap};

use crate::error::DataError;

/// The JSON key that marks a character-level `tokenizer.json`.
pub const KIND_KEY: &str = "ember_char_tokenizer";

/// One token per character of a fixed, sorted alphabet.
#[derive(Debug, Clone, PartialEq)]
pub struct CharTokenizer {
    chars: Vec<char>,
    ids: HashMap<char, u32>,
}

impl CharTokenizer {
    /// The vocabulary of `text`: its distinct characters, sorted by code point.
    pub fn from_text(text: &str) -> Self {
        let set: BTreeSet<char> = text.chars().collect();
        Self::from_chars(set.into_iter().collect())
    }

    fn from_chars(chars: Vec<char>) -> Self {
        let ids = chars.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        Self { chars, ids }
    }

    /// Number of characters.
    pub fn vocab_size(&self) -> usize {
        self.chars.len()
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

    /// Text of `ids`; ids outside the vocabulary become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&i| self.chars.get(i as usize).copied().unwrap_or('\u{FFFD}'))
            .collect()
    }

    /// `{"ember_char_tokenizer": 1, "vocab": "<the characters in id order>"}`.
    pub fn to_json(&self) -> String {
        let vocab: String = self.chars.iter().collect();
        serde_json::json!({ KIND_KEY: 1, "vocab": vocab }).to_string()
    }

    /// Parses [`to_json`](Self::to_json)'s output.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        if value[KIND_KEY] != 1 {
            return Err(format!("unsupported character tokenizer version {}", value[KIND_KEY]));
        }
        let vocab = value["vocab"].as_str().ok_or("the \"vocab\" string is missing")?;
        let chars: Vec<char> = vocab.chars().collect();
        if chars.is_empty() || chars.windows(2).any(|w| w[0] >= w[1]) {
            return Err("the \"vocab\" characters must be non-empty, sorted and distinct".into());
        }
        Ok(Self::from_chars(chars))
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
    fn unicode_survives_the_json_round_trip() {
        let t = CharTokenizer::from_text("naïve café — \"quoted\"\n\tok");
        let value: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(CharTokenizer::from_json(&value).unwrap(), t);
    }
}
