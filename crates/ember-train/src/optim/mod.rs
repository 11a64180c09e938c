//! Optimisation: gradients by parameter name, global-norm clipping, AdamW, and the learning
//! rate schedule.
//!
//! Burn ships an AdamW, but ember needs three things it does differently: weight decay on
//! 2-D weights only (not on biases and LayerNorm parameters), clipping by the global norm of
//! all gradients (Burn's `GradientClippingConfig::Norm` clips each tensor on its own), and
//! optimiser state keyed by parameter name so that checkpoints are readable and resumable
//! bit for bit. Each is a few lines here.

pub mod adamw;
pub mod grads;
pub mod loss_scale;
pub mod schedule;

pub use adamw::{AdamW, AdamWConfig};
pub use grads::{GradBuffer, clip_factor};
pub use schedule::LrSchedule;
