//! Errors of the visualisation crate.

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong writing a page or a figure.
#[derive(Debug, Error)]
pub enum VizError {
    /// The output could not be written.
    #[error("writing {path}: {problem}")]
    Write {
        /// The file asked for.
        path: PathBuf,
        /// What went wrong, and what to do.
        problem: String,
    },
    /// A figure could not be drawn.
    #[error("drawing {what}: {message}")]
    Draw {
        /// The figure.
        what: String,
        /// The drawing library's message.
        message: String,
    },
}
