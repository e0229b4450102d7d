//! sglrp — Layer-wise Relevance Propagation (LRP), Contrastive LRP (CLRP) and Softmax-Gradient LRP
//! (SGLRP) for VGG-family image classifiers, on the CPU and on NVIDIA GPUs.
//!
//! The method is described in `docs/` (method, evaluation, numerics, GPU). [`model`] holds the
//! network and its weights, [`backend`] the layer operations (CPU reference and CUDA), [`explain`]
//! the heads, presets and the relevance pass, [`heatmap`] the display of a relevance map, [`render`] its pictures (colour maps, overlays, the
//! comparison grid), [`io`] image reading and atomic output files, and [`pipeline`] the engine
//! every command runs on (host threads, one worker per device, results in input order).

pub mod backend;
pub mod bench;
pub mod cluster;
pub mod dataset;
pub mod error;
pub mod eval;
pub mod explain;
pub mod heatmap;
pub mod io;
pub mod model;
pub mod pipeline;
pub mod render;
pub mod verify;

pub use error::{Error, Result};
