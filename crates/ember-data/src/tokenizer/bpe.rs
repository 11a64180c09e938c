//! Byte-level BPE tokenizer, trained with the Hugging Face `tokenizers` crate.
//!
//! Text is first mapped to bytes (each byte a symbol, so any UTF-8 text encodes), then the
//! most frequent adjacent pairs are merged until the vocabulary holds `vocab_size` symbols.

use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, TokenizerBuilder, TokenizerImpl};

use crate::error::DataError;

type Inner = TokenizerImpl<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

/// The smallest vocabulary byte-level BPE can have: the 256 byte symbols.
pub const MIN_VOCAB: usize = 256;

/// A trained byte-level BPE tokenizer.
#[derive(Debug, Clone)]
pub struct BpeTokenizer {
    inner: tokenizers::Tokenizer,
}

impl BpeTokenizer {
    /// Trains on `text` until the vocabulary holds `vocab_size` tokens (fewer if the text has
    /// no more pairs to merge).
    pub fn train(text: &str, vocab_size: usize) -> Result<Self, DataError> {
        Self::train_on(std::iter::once(text), vocab_size, None)
    }

    /// Trains on the texts `pieces`, with the special token `eos` (id 0) if given.
    pub fn train_on<'a>(
        pieces: impl Iterator<Item = &'a str> + Send,
        vocab_size: usize,
        eos: Option<&str>,
    ) -> Result<Self, DataError> {
        if vocab_size < MIN_VOCAB {
            return Err(DataError::InvalidConfig {
                key: "vocab_size",
                value: vocab_size.to_string(),
                problem: format!("byte-level BPE needs at least {MIN_VOCAB} tokens (one per byte); try 512 or more"),
            });
        }
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .special_tokens(eos.iter().map(|t| AddedToken::from(t.to_string(), true)).collect())
            .build();
        let mut tokenizer: Inner = TokenizerBuilder::new()
            .with_model(BPE::default())
            .with_pre_tokenizer(Some(PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true))))
            .with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevelDecoder::default())))
            .build()
            .map_err(|e| DataError::BpeTraining(e.to_string()))?;
        // Train on lines, so that no pre-token spans a line break twice.
        let lines = pieces.flat_map(|text| text.split_inclusive('\n'));
        tokenizer
            .train(&mut trainer, lines)
            .map_err(|e| DataError::BpeTraining(e.to_string()))?;
        Ok(Self {
            inner: tokenizers::Tokenizer::from(tokenizer),
        })
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text`: the ids Hugging Face's tokenizer gives for the same
    /// `tokenizer.json` and text (byte-level BPE encodes any text).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| DataError::BpeTraining(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// [`encode`](Self::encode) without character offsets (which a dataset does not keep):
    /// the same ids, faster.
    pub fn encode_fast(&self, text: &str) -> Result<Vec<u32>, DataError> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| DataError::BpeTraining(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The id of `token`, if it is one of the vocabulary's (added tokens included).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The largest token id plus one (a tokenizer may leave ids unused).
    pub fn id_bound(&self) -> usize {
        let vocab = self.inner.get_vocab(true);
        vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0)
    }

    /// Text of `ids` (invalid UTF-8 sequences become U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, false).unwrap_or_default()
    }

    /// The Hugging Face `tokenizer.json` text (this tokenizer's own format).
    pub fn to_json(&self) -> String {
        self.inner.to_string(false).expect("a trained tokenizer serialises")
    }

    /// Parses a Hugging Face `tokenizer.json`.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let inner: tokenizers::Tokenizer = text.parse().map_err(|e| format!("not a tokenizers JSON file: {e}"))?;
        Ok(Self { inner })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_merges_and_round_trips_any_text() {
        let text = "the cat sat on the mat; the cat ate the rat.\n".repeat(50);
        let bpe = BpeTokenizer::train(&text, 300).unwrap();
        assert!(
            bpe.vocab_size() > 256 && bpe.vocab_size() <= 300,
            "{}",
            bpe.vocab_size()
        );
        let ids = bpe.encode(&text).unwrap();
        assert!(
            ids.len() < text.len() / 3,
            "merges should compress: {} ids for {} bytes",
            ids.len(),
            text.len()
        );
        assert_eq!(bpe.decode(&ids), text);
        // characters never seen in training still encode, byte by byte
        let unseen = "Ωmega ☃\n";
        assert_eq!(bpe.decode(&bpe.encode(unseen).unwrap()), unseen);
    }

    #[test]
    fn too_small_a_vocabulary_is_rejected() {
        let msg = BpeTokenizer::train("abc", 100).unwrap_err().to_string();
        assert!(msg.starts_with("data.vocab_size = 100"), "{msg}");
    }
}
