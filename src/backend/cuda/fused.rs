//! The launchers of the fused z⁺ pass (docs/method.md §Rules): the dual forwards that store a′
//! and q = a′ / stab(z⁺) (`conv_dual.cu`, `dense_dual.cu`) and the multiplications by q on the
//! way down (`maxpool_route.cu`, `scale_heads.cu`), with the plain max-pool routing that
//! shares its kernel body. The trait methods in `gpu.rs` call these.

use super::config;
use super::device::{Arg, Device};
use super::gpu::{
    GpuBackend, GpuBuf, GpuConv, GpuDense, GpuIndex, check, geometry, int, stab_args,
};
use super::registry::Op;
use crate::backend::{BiasMode, ConvShape, DenseShape, PoolShape, Stabilizer};
use crate::error::{Error, Result};

impl<D: Device> GpuBackend<D> {
    /// β of a bias mode: null, max(b, 0) or b.
    fn beta(&self, bias: BiasMode, full: &D::Mem, positive: &D::Mem) -> Arg {
        match bias {
            BiasMode::None => Arg::Ptr(0),
            BiasMode::Positive => self.ptr(positive),
            BiasMode::Full => self.ptr(full),
        }
    }

    pub(super) fn launch_conv_dual(
        &self,
        s: ConvShape,
        x: &GpuBuf<D>,
        w: &GpuConv<D>,
        bias: BiasMode,
        stab: Stabilizer,
    ) -> Result<(GpuBuf<D>, GpuBuf<D>)> {
        let op = "conv3x3_dual";
        Self::check_conv(op, s, w)?;
        check(op, "x", x.len, s.input_len())?;
        let (y, q) = (self.alloc(s.output_len())?, self.alloc(s.output_len())?);
        let g = self.conv_geometry(op, s.n * s.h * s.w, s.cout)?;
        let [kind, value] = stab_args(stab);
        let args = [
            self.ptr(&x.mem),
            self.ptr(&w.w),
            self.ptr(&w.w_pos),
            self.ptr(&w.bias),
            self.beta(bias, &w.bias, &w.bias_pos),
            self.ptr(&y.mem),
            self.ptr(&q.mem),
            int(op, s.n)?,
            int(op, s.h)?,
            int(op, s.w)?,
            int(op, s.cin)?,
            int(op, s.cout)?,
            kind,
            value,
        ];
        // SAFETY: `conv3x3_dual[_v1](const float* x, const float* w, const float* w_pos,
        // const float* bias, const float* beta, float* y, float* q, int n, int h, int w,
        // int cin, int cout, int stab_kind, float stab_value)`; x holds N·H·W·Cin floats
        // (checked), w and w_pos 9·Cin·Cout, bias Cout, beta Cout or null (prepared for this
        // shape, checked), y and q N·H·W·Cout.
        unsafe { self.launch(self.kernel(Op::ConvDual), g, &args)? };
        Ok((y, q))
    }

    pub(super) fn launch_dense_dual(
        &self,
        s: DenseShape,
        x: &GpuBuf<D>,
        w: &GpuDense<D>,
        relu: bool,
        bias: BiasMode,
        stab: Stabilizer,
    ) -> Result<(GpuBuf<D>, GpuBuf<D>)> {
        let op = "dense_dual";
        Self::check_dense(op, s, w)?;
        check(op, "x", x.len, s.n * s.inputs)?;
        let (y, q) = (self.alloc(s.n * s.outputs)?, self.alloc(s.n * s.outputs)?);
        let g = geometry(op, config::dense_partial(s.outputs as u64, s.n as u64, 1))?;
        let [kind, value] = stab_args(stab);
        let args = [
            self.ptr(&x.mem),
            self.ptr(&w.w),
            self.ptr(&w.w_pos),
            self.ptr(&w.bias),
            self.beta(bias, &w.bias, &w.bias_pos),
            self.ptr(&y.mem),
            self.ptr(&q.mem),
            int(op, s.n)?,
            int(op, s.inputs)?,
            int(op, s.outputs)?,
            Arg::I32(relu as i32),
            kind,
            value,
        ];
        // SAFETY: `dense_dual(const float* x, const float* w, const float* w_pos,
        // const float* bias, const float* beta, float* y, float* q, int n, int in, int out,
        // int relu, int stab_kind, float stab_value)`; x holds n·in floats (checked), w and
        // w_pos out·in, bias out, beta out or null (checked), y and q n·out.
        unsafe { self.launch(op, g, &args)? };
        Ok((y, q))
    }

    /// Max-pool routing (`maxpool_route`), or with `m` the routing times `m`
    /// (`maxpool_route_scaled`): the one launcher of both kernels of `maxpool_route.cu`.
    pub(super) fn launch_route(
        &self,
        s: PoolShape,
        heads: usize,
        r: &GpuBuf<D>,
        argmax: &GpuIndex<D>,
        m: Option<&GpuBuf<D>>,
    ) -> Result<GpuBuf<D>> {
        // The names the trait methods give their operation and their routed input.
        let (op, input) = match m {
            None => ("maxpool_route", "r"),
            Some(_) => ("maxpool_route_scaled", "c"),
        };
        let rows = s.n * heads;
        check(op, input, r.len, s.output_len() * heads)?;
        check(op, "argmax", argmax.len, s.output_len())?;
        if let Some(m) = m {
            check(op, "m", m.len, s.input_len())?;
        }
        let out = self.alloc(s.input_len() * heads)?;
        let g = geometry(op, config::elementwise(out.len as u64))?;
        let mut args = vec![self.ptr(&r.mem), self.ptr(&argmax.mem)];
        args.extend(m.map(|m| self.ptr(&m.mem)));
        args.extend([
            self.ptr(&out.mem),
            int(op, rows)?,
            int(op, heads)?,
            int(op, s.h)?,
            int(op, s.w)?,
            int(op, s.c)?,
        ]);
        // SAFETY: `maxpool_route(const float* r, const unsigned* argmax, float* out, int rows,
        // int heads, int h, int w, int c)`, and `maxpool_route_scaled` with `const float* m`
        // after argmax; r holds rows·(H/2)·(W/2)·C floats, argmax N·(H/2)·(W/2)·C indices
        // (each < H·W·C as maxpool_forward wrote them) and m N·H·W·C (checked); out holds
        // rows·H·W·C.
        unsafe { self.launch(op, g, &args)? };
        Ok(out)
    }

    pub(super) fn launch_scale_heads(
        &self,
        n: usize,
        heads: usize,
        r: &GpuBuf<D>,
        m: &GpuBuf<D>,
    ) -> Result<GpuBuf<D>> {
        let op = "scale_heads";
        if n == 0 || !m.len.is_multiple_of(n) {
            return Err(Error::Backend {
                backend: "cuda",
                op: op.into(),
                message: format!("m has {} values, not whole maps of {n} images", m.len),
            });
        }
        check(op, "r", r.len, m.len * heads)?;
        let map = m.len / n;
        let out = self.alloc(r.len)?;
        let g = geometry(op, config::elementwise(r.len as u64))?;
        let args = [
            self.ptr(&r.mem),
            self.ptr(&m.mem),
            self.ptr(&out.mem),
            Arg::I64((n * heads) as i64),
            Arg::I64(map as i64),
            int(op, heads)?,
        ];
        // SAFETY: `scale_heads(const float* r, const float* m, float* out, long long rows,
        // long long map, int heads)`; r holds rows·map floats and m n·map (checked), out rows·map.
        unsafe { self.launch(op, g, &args)? };
        Ok(out)
    }
}
