//! Pages and pictures of what a run did, for people to look at:
//!
//! - [`attention`]: the attention explorer, one page holding every head's attention at every
//!   kept checkpoint of a run, and a PNG of every head;
//! - [`report`]: the run report, the curves of one or more runs, and a PNG of them;
//! - [`cost`]: attention's time and memory against the context length, as a PNG.
//!
//! A page is one HTML file with its script, style and data inline: nothing is fetched from a
//! network, and it opens from disk in any browser. A figure is a PNG drawn with `plotters` into
//! a pixel buffer and encoded with `png`, with an embedded font, so it looks the same on every
//! machine. Files are written atomically (a temporary file, then a rename), so a failed write
//! never leaves a half-written page where an old one was.
//!
//! This crate knows nothing of models, tensors or training: it draws the plain data it is given.

pub mod attention;
pub mod cost;
mod error;
mod figure;
mod page;
pub mod report;

pub use error::VizError;
pub use page::{check_writable, write_atomic};
