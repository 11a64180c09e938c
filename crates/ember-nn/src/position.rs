//! How attention learns where a token is. Attention compares every query with every key, and
//! nothing in `q · k` says how far apart the two are: order has to be put in. ember offers
//! three ways, chosen per model (`position` in the config) and applied inside every attention
//! layer, so there is no learned position table to add to the embeddings.

use serde::{Deserialize, Serialize};

/// How attention learns where a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// Rotary embeddings: queries and keys are rotated by their positions (see [`crate::rope`]).
    #[default]
    Rope,
    /// Linear biases: each score is lowered in proportion to the distance (see [`crate::alibi`]).
    Alibi,
    /// Nothing: attention alone sees a set of tokens, not a sequence (only the causal mask
    /// tells a position how many tokens came before it).
    None,
}
