//! Errors of the model crate.

use thiserror::Error;

/// What can be wrong with a model configuration or a generation request.
#[derive(Debug, Error, PartialEq)]
pub enum ModelError {
    /// A configuration value is out of range or inconsistent with another.
    #[error("model.{key} = {value}: {problem}")]
    InvalidConfig {
        /// The offending key, without the `model.` prefix.
        key: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong and what would be right.
        problem: String,
    },
    /// A sampling option is out of range.
    #[error("{option} = {value}: {problem}")]
    InvalidSampling {
        /// The option's name.
        option: &'static str,
        /// The value as given.
        value: String,
        /// What is expected.
        problem: String,
    },
    /// A token id does not exist in the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    TokenOutOfRange {
        /// The offending id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
}
