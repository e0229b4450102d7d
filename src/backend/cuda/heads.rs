//! The launcher of `heads.cu`: the output relevance put on the logits, on the device
//! (docs/method.md §Heads). The trait method in `gpu.rs` calls it.

use super::config;
use super::device::Device;
use super::gpu::{GpuBackend, GpuBuf, GpuIndex, geometry, int};
use crate::backend::{HeadRule, HeadSpec, HeadTarget, heads_mismatch};
use crate::error::{Error, Result};

/// A head row as `heads.cu` reads it: rule, target kind, class or rank, custom row.
fn encode(spec: &HeadSpec) -> [u32; 4] {
    let (rule, custom) = match spec.rule {
        HeadRule::Lrp => (0, 0),
        HeadRule::Clrp => (1, 0),
        HeadRule::Sglrp => (2, 0),
        HeadRule::OneHot => (3, 0),
        HeadRule::Custom(i) => (4, i),
    };
    let (kind, value) = match spec.target {
        HeadTarget::Class(c) => (0, c),
        HeadTarget::Rank(k) => (1, k),
    };
    [rule, kind, value as u32, custom as u32]
}

impl<D: Device> GpuBackend<D> {
    pub(super) fn launch_heads(
        &self,
        logits: &GpuBuf<D>,
        classes: usize,
        specs: &[HeadSpec],
        custom: &[f32],
    ) -> Result<(GpuBuf<D>, GpuIndex<D>)> {
        let op = "heads";
        let mut tmp = None;
        let logits = self.as_f32(logits, &mut tmp)?;
        if let Some(message) = heads_mismatch(logits.len(), classes, specs, custom.len()) {
            return Err(Error::Backend {
                backend: "cuda",
                op: op.into(),
                message,
            });
        }
        let rows = specs.len();
        // Small tables travel as f32 words: the bits are the kernel's ints.
        let words: Vec<f32> = specs.iter().flat_map(encode).map(f32::from_bits).collect();
        let specs_buf = self.device().upload(&words)?;
        let custom_buf = self
            .device()
            .upload(if custom.is_empty() { &[0.0] } else { custom })?;
        let out = self.alloc(rows * classes)?;
        let targets = GpuIndex {
            mem: self.device().alloc(rows)?,
            len: rows,
        };
        let g = geometry(op, config::heads(rows as u64))?;
        let args = [
            self.ptr(&logits.mem),
            self.ptr(&specs_buf),
            self.ptr(&custom_buf),
            self.ptr(&out.mem),
            self.ptr(&targets.mem),
            int(op, classes)?,
            int(op, rows / (logits.len() / classes))?,
        ];
        // SAFETY: `heads(const float* logits, const int* specs, const float* custom, float* out,
        // unsigned* targets, int classes, int per_image)`; logits holds N·classes floats, specs
        // 4 words per row, custom every custom row's classes values (checked with the targets
        // and ranks, so every index the kernel makes is in range), out rows·classes, targets rows.
        unsafe { self.launch(op, g, &args)? };
        Ok((out, targets))
    }
}
