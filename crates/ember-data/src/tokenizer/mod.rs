//! Tokenizers: text ↔ token ids.
//!
//! Two kinds, chosen by `data.tokenizer`:
//! - [`CharTokenizer`]: one token per character; the vocabulary is the sorted set of
//!   characters of the corpus.
//! - [`BpeTokenizer`]: byte-level BPE trained with the `tokenizers` crate; any text encodes.
//!   The same type holds any Hugging Face `tokenizer.json` (GPT-2's, or one a model was
//!   imported with), used as it is.
//!
//! Either is saved as `tokenizer.json` in the run directory and reloaded from there.

pub mod bpe;
pub mod char;

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

pub use self::bpe::BpeTokenizer;
pub use self::char::CharTokenizer;
use crate::error::DataError;

/// A trained tokenizer of either kind.
#[derive(Debug, Clone)]
pub enum Tokenizer {
    /// Character-level.
    Char(CharTokenizer),
    /// Byte-level BPE.
    Bpe(BpeTokenizer),
}

impl Tokenizer {
    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Char(t) => t.vocab_size(),
            Tokenizer::Bpe(t) => t.vocab_size(),
        }
    }

    /// Token ids of `text`. `what` names the text in errors ("the prompt", a file name).
    pub fn encode(&self, text: &str, what: &str) -> Result<Vec<u32>, DataError> {
        match self {
            Tokenizer::Char(t) => t.encode(text, what),
            Tokenizer::Bpe(t) => t.encode(text),
        }
    }

    /// Token ids of one piece of a corpus (see [`crate::sources`]): [`encode`](Self::encode),
    /// without the offsets a dataset does not keep.
    pub fn encode_piece(&self, text: &str) -> Result<Vec<u32>, DataError> {
        match self {
            Tokenizer::Char(t) => t.encode(text, "the corpus"),
            Tokenizer::Bpe(t) => t.encode_fast(text),
        }
    }

    /// The id of `token` (an end-of-text token, say), if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        match self {
            Tokenizer::Char(t) => t.token_id(token),
            Tokenizer::Bpe(t) => t.token_id(token),
        }
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Tokenizer::Char(t) => t.decode(ids),
            Tokenizer::Bpe(t) => t.decode(ids),
        }
    }

    /// The `tokenizer.json` text.
    pub fn to_json(&self) -> String {
        match self {
            Tokenizer::Char(t) => t.to_json(),
            Tokenizer::Bpe(t) => t.to_json(),
        }
    }

    /// SHA-256 of the `tokenizer.json` text: checkpoints record it, so that a checkpoint is
    /// never used with a tokenizer other than its own.
    pub fn fingerprint(&self) -> String {
        hex_sha256(self.to_json().as_bytes())
    }

    /// Reads `tokenizer.json` of either kind.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = crate::files::read_regular_text(path, crate::files::limit::TOKENIZER).map_err(|e| {
            DataError::BadTokenizer {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        Self::from_json(&text).map_err(|reason| DataError::BadTokenizer {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses `tokenizer.json` text of either kind.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        if value.get(char::KIND_KEY).is_some() {
            Ok(Tokenizer::Char(CharTokenizer::from_json(&value)?))
        } else {
            Ok(Tokenizer::Bpe(BpeTokenizer::from_json(text)?))
        }
    }

    /// Reads a Hugging Face `tokenizer.json` (as `ember import` finds one): a character-level
    /// tokenizer in the form [`to_hf_json`](Self::to_hf_json) writes becomes ember's own
    /// character tokenizer, any other is used as it is.
    pub fn from_hf_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        match CharTokenizer::from_hf(&value) {
            Some(t) => Ok(Tokenizer::Char(t)),
            None => Ok(Tokenizer::Bpe(BpeTokenizer::from_json(text)?)),
        }
    }

    /// This tokenizer in the Hugging Face `tokenizers` format (`ember export` writes it).
    pub fn to_hf_json(&self) -> String {
        match self {
            Tokenizer::Char(t) => t.to_hf_json(),
            Tokenizer::Bpe(t) => t.to_json(),
        }
    }

    /// The largest token id plus one: the embedding needs at least this many rows.
    pub fn id_bound(&self) -> usize {
        match self {
            Tokenizer::Char(t) => t.vocab_size(),
            Tokenizer::Bpe(t) => t.id_bound(),
        }
    }

    /// Writes `tokenizer.json` (through a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, self.to_json()).map_err(DataError::io("writing", &tmp))?;
        fs::rename(&tmp, path).map_err(DataError::io("renaming into place", path))
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_round_trip_through_tokenizer_json() {
        let text = "First Citizen:\nBefore we proceed any further, hear me speak.\n".repeat(20);
        let dir = tempfile::tempdir().unwrap();
        for tok in [
            Tokenizer::Char(CharTokenizer::from_text(&text)),
            Tokenizer::Bpe(BpeTokenizer::train(&text, 300).unwrap()),
        ] {
            let path = dir.path().join("tokenizer.json");
            tok.save(&path).unwrap();
            let back = Tokenizer::load(&path).unwrap();
            assert_eq!(back.vocab_size(), tok.vocab_size());
            assert_eq!(back.fingerprint(), tok.fingerprint());
            let ids = back.encode(&text, "text").unwrap();
            assert_eq!(ids, tok.encode(&text, "text").unwrap());
            assert_eq!(back.decode(&ids), text);
        }
    }

    #[test]
    fn a_damaged_tokenizer_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        fs::write(&path, "{ not json").unwrap();
        let msg = Tokenizer::load(&path).unwrap_err().to_string();
        assert!(
            msg.contains("tokenizer.json") && msg.contains("not valid JSON"),
            "{msg}"
        );
    }
}
