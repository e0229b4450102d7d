//! The launcher of `conv_transpose_narrow.cu`: the transposed conv of a layer with at most
//! `NARROW_MAX_CIN` input channels (the z^B first layer), which `conv_transpose` runs instead of
//! its registry row where [`registry::narrow_transpose`] says so. The kernel reads f32 only, so
//! bf16 inputs are converted first; it writes f32.

use super::config;
use super::device::{Arg, Device};
use super::gpu::{GpuBackend, GpuBuf, GpuConv, check, geometry, int};
use super::registry;
use crate::backend::{ConvShape, WeightSet};
use crate::error::Result;

impl<D: Device> GpuBackend<D> {
    pub(super) fn launch_conv_transpose_narrow(
        &self,
        s: ConvShape,
        heads: usize,
        g: &GpuBuf<D>,
        w: &GpuConv<D>,
        set: WeightSet,
        act: Option<&GpuBuf<D>>,
    ) -> Result<GpuBuf<D>> {
        let op = "conv_transpose";
        Self::check_conv(op, s, w)?;
        let rows = s.n * heads;
        check(op, "g", g.len(), s.output_len() * heads)?;
        if let Some(act) = act {
            check(op, "act", act.len(), s.input_len())?;
        }
        let (mut tg, mut ta) = (None, None);
        let g = self.as_f32(g, &mut tg)?;
        let act = match act {
            Some(a) => Some(self.as_f32(a, &mut ta)?),
            None => None,
        };
        let out = self.alloc(s.input_len() * heads)?;
        let geo = geometry(
            op,
            config::conv_transpose_narrow(rows as u64, s.h as u64, s.w as u64),
        )?;
        let args = [
            self.ptr(g.mem()),
            self.conv_weights(w, set, true),
            act.map_or(Arg::Ptr(0), |a| self.ptr(a.mem())),
            self.ptr(out.mem()),
            int(op, rows)?,
            int(op, heads)?,
            int(op, s.h)?,
            int(op, s.w)?,
            int(op, s.cout)?,
            int(op, s.cin)?,
        ];
        // SAFETY: `conv_transpose_narrow(const float* g, const float* wt, const float* act,
        // float* out, int rows, int heads, int h, int w, int cout, int cin)`; g holds
        // rows·H·W·Cout floats, act N·H·W·Cin or null (checked, f32), wt 9·Cout·Cin (prepared
        // for this shape, checked), out rows·H·W·Cin; the grid has a block per tile of each row.
        unsafe { self.launch(registry::NARROW_TRANSPOSE, geo, &args)? };
        Ok(out)
    }
}
