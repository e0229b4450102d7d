//! The launcher of `heads.cu`: the output relevance put on the logits, on the device
//! (docs/method.md §Heads). The trait method in `gpu.rs` calls it.

use super::config;
use super::device::{Arg, Device};
use super::gpu::{GpuBackend, GpuBuf, geometry, int};
use crate::backend::heads_mismatch;
use crate::error::{Error, Result};

impl<D: Device> GpuBackend<D> {
    pub(super) fn launch_heads(
        &self,
        logits: &GpuBuf<D>,
        classes: usize,
        rows: usize,
        table: &GpuBuf<D>,
    ) -> Result<(GpuBuf<D>, GpuBuf<D>)> {
        let op = "heads";
        let (mut tl, mut tt) = (None, None);
        let (logits, table) = (self.as_f32(logits, &mut tl)?, self.as_f32(table, &mut tt)?);
        if let Some(message) = heads_mismatch(logits.len(), classes, rows, table.len()) {
            return Err(Error::Backend {
                backend: "cuda",
                op: op.into(),
                message,
            });
        }
        let out = self.alloc(rows * classes)?;
        let targets = self.alloc(rows)?;
        let g = geometry(op, config::heads(rows as u64))?;
        let args = [
            self.ptr(&logits.mem),
            self.ptr(&table.mem),
            self.ptr(&out.mem),
            self.ptr(&targets.mem),
            int(op, classes)?,
            int(op, rows / (logits.len() / classes))?,
            int(op, rows)?,
            Arg::I64(table.len() as i64),
        ];
        // SAFETY: `heads(const float* logits, const unsigned* table, float* out, float* targets,
        // int classes, int per_image, int rows, long long table_len)`; logits holds N·classes
        // floats, table at least 4·rows words (checked; the kernel checks each row against
        // table_len before it reads a custom row), out rows·classes, targets rows.
        unsafe { self.launch(op, g, &args)? };
        Ok((out, targets))
    }
}
