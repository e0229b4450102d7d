//! The launcher of `heatmap.cu`: what a run writes, reduced on the device before it is
//! downloaded. The trait method in `gpu.rs` calls it.

use super::config;
use super::device::{Arg, Device};
use super::gpu::{GpuBackend, GpuBuf, check, geometry, int};
use crate::error::Result;
use crate::heatmap::HeatmapKind;

impl<D: Device> GpuBackend<D> {
    pub(super) fn launch_heatmap(
        &self,
        r: &GpuBuf<D>,
        channels: usize,
        kind: HeatmapKind,
    ) -> Result<GpuBuf<D>> {
        let op = "heatmap";
        let mut tmp = None;
        let r = self.as_f32(r, &mut tmp)?;
        let pixels = r.len / channels.max(1);
        check(op, "r", r.len, channels.max(1) * pixels)?;
        let out = self.alloc(pixels)?;
        let g = geometry(op, config::elementwise(pixels as u64))?;
        let kind = match kind {
            HeatmapKind::Positive => 0,
            HeatmapKind::Signed => 1,
            HeatmapKind::Absolute => 2,
        };
        let args = [
            self.ptr(&r.mem),
            self.ptr(&out.mem),
            Arg::I64(pixels as i64),
            int(op, channels)?,
            int(op, kind)?,
        ];
        // SAFETY: `heatmap(const float* r, float* out, long long pixels, int c, int kind)`; r
        // holds pixels·c floats (checked), out pixels.
        unsafe { self.launch(op, g, &args)? };
        Ok(out)
    }
}
