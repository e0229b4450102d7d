//! The ops of [`crate::backend::Backend`] that the registry gives to the tensor-core kernels
//! (`mma.rs`): each layer's weights are packed for the math on first use and kept with the
//! prepared layer. BF16 convolutions keep their outputs (activations, quotients, relevances) as
//! bf16; the dense layers, whose outputs are small, write f32. The ops that read only f32 (pools,
//! routing, the quotients without a tensor-core kernel) convert a bf16 input first
//! ([`GpuBackend::as_f32`]).

use super::config::{self, MmaMath};
use super::device::{Arg, Device};
use super::gpu::{GpuBackend, GpuBuf, GpuConv, GpuDense, check, geometry};
use super::mma::{self, MmaConv, MmaDense, Output, Storage, ZPlus};
use crate::backend::{BiasMode, ConvShape, DenseShape, Stabilizer, WeightSet};
use crate::error::Result;

impl<D: Device> GpuBackend<D> {
    /// `buf` in `storage`: itself, or a converted copy kept in `tmp`.
    pub(super) fn in_storage<'a>(
        &self,
        buf: &'a GpuBuf<D>,
        storage: Storage,
        tmp: &'a mut Option<GpuBuf<D>>,
    ) -> Result<&'a GpuBuf<D>> {
        if buf.storage == storage {
            return Ok(buf);
        }
        let out = self.alloc_in(buf.len, storage)?;
        let kernel = match storage {
            Storage::Bf16 => "to_bf16",
            Storage::F32 => "to_f32",
        };
        let g = geometry(kernel, config::elementwise(buf.len as u64))?;
        let args = [
            self.ptr(&buf.mem),
            self.ptr(&out.mem),
            Arg::I64(buf.len as i64),
        ];
        // SAFETY: `to_bf16(const float*, unsigned*, long long len)` / `to_f32(const unsigned*,
        // float*, long long len)`; the source holds len values in its storage, the destination
        // was allocated for len values in the other.
        unsafe { self.launch(kernel, g, &args)? };
        Ok(tmp.insert(out))
    }

    /// `buf` as f32, for the kernels that read only f32.
    pub(super) fn as_f32<'a>(
        &self,
        buf: &'a GpuBuf<D>,
        tmp: &'a mut Option<GpuBuf<D>>,
    ) -> Result<&'a GpuBuf<D>> {
        self.in_storage(buf, Storage::F32, tmp)
    }

    fn mma_conv<'w>(&self, w: &'w GpuConv<D>, math: MmaMath) -> Result<&'w MmaConv<D>> {
        w.mma.get_or_make(math, || MmaConv::new(self, w, math))
    }

    fn mma_dense<'w>(&self, w: &'w GpuDense<D>, math: MmaMath) -> Result<&'w MmaDense<D>> {
        w.mma.get_or_make(math, || MmaDense::new(self, w, math))
    }

    /// The input storage a math reads: TF32 kernels read f32, BF16 ones either.
    fn readable<'a>(
        &self,
        x: &'a GpuBuf<D>,
        math: MmaMath,
        tmp: &'a mut Option<GpuBuf<D>>,
    ) -> Result<&'a GpuBuf<D>> {
        if math.bf16() {
            Ok(x)
        } else {
            self.as_f32(x, tmp)
        }
    }

    pub(super) fn mma_conv_forward(
        &self,
        s: ConvShape,
        x: &GpuBuf<D>,
        w: &GpuConv<D>,
        math: MmaMath,
    ) -> Result<GpuBuf<D>> {
        Self::check_conv("conv3x3_forward", s, w)?;
        let mut tmp = None;
        let x = self.readable(x, math, &mut tmp)?;
        let c = self.mma_conv(w, math)?;
        let out = Storage::of(math);
        mma::conv_fwd(self, c, s.n, (s.h, s.w), x, Output::Hidden, out)
    }

    pub(super) fn mma_conv_dual(
        &self,
        s: ConvShape,
        x: &GpuBuf<D>,
        w: &GpuConv<D>,
        zplus: ZPlus,
        math: MmaMath,
    ) -> Result<(GpuBuf<D>, GpuBuf<D>)> {
        Self::check_conv("conv3x3_dual", s, w)?;
        let mut tmp = None;
        let x = self.readable(x, math, &mut tmp)?;
        let c = self.mma_conv(w, math)?;
        let out = Storage::of(math);
        mma::conv_dual(self, c, s.n, (s.h, s.w), x, Output::Hidden, zplus, out)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn mma_conv_transpose(
        &self,
        s: ConvShape,
        heads: usize,
        g: &GpuBuf<D>,
        w: &GpuConv<D>,
        set: WeightSet,
        act: Option<&GpuBuf<D>>,
        math: MmaMath,
    ) -> Result<GpuBuf<D>> {
        Self::check_conv("conv_transpose", s, w)?;
        let (mut tg, mut ta) = (None, None);
        let g = self.readable(g, math, &mut tg)?;
        let act = match act {
            Some(a) => Some(self.in_storage(a, Storage::of(math), &mut ta)?),
            None => None,
        };
        let c = self.mma_conv(w, math)?;
        let rows = (s.n * heads, heads);
        mma::conv_t(self, c, set, rows, (s.h, s.w), g, act, Storage::of(math))
    }

    pub(super) fn mma_dense_forward(
        &self,
        s: DenseShape,
        x: &GpuBuf<D>,
        w: &GpuDense<D>,
        relu: bool,
        math: MmaMath,
    ) -> Result<GpuBuf<D>> {
        Self::check_dense("dense_forward", s, w)?;
        let mut tmp = None;
        let x = self.readable(x, math, &mut tmp)?;
        let d = self.mma_dense(w, math)?;
        mma::dense_fwd(self, d, s.n, x, output(relu), Storage::F32, None)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn mma_dense_dual(
        &self,
        s: DenseShape,
        x: &GpuBuf<D>,
        w: &GpuDense<D>,
        relu: bool,
        (bias, stab): (BiasMode, Stabilizer),
        math: MmaMath,
    ) -> Result<(GpuBuf<D>, GpuBuf<D>)> {
        Self::check_dense("dense_dual", s, w)?;
        let mut tmp = None;
        let x = self.readable(x, math, &mut tmp)?;
        let d = self.mma_dense(w, math)?;
        let zplus = ZPlus { bias, stab };
        mma::dense_dual(self, d, s.n, x, output(relu), zplus, Storage::F32, None)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn mma_dense_transpose(
        &self,
        s: DenseShape,
        heads: usize,
        g: &GpuBuf<D>,
        w: &GpuDense<D>,
        set: WeightSet,
        act: Option<&GpuBuf<D>>,
        math: MmaMath,
    ) -> Result<GpuBuf<D>> {
        Self::check_dense("dense_transpose", s, w)?;
        check("dense_transpose", "g", g.len, s.n * heads * s.outputs)?;
        let (mut tg, mut ta) = (None, None);
        let g = self.readable(g, math, &mut tg)?;
        let act = match act {
            Some(a) => Some(self.in_storage(a, Storage::of(math), &mut ta)?),
            None => None,
        };
        let d = self.mma_dense(w, math)?;
        let rows = (s.n * heads, heads);
        mma::dense_t(self, d, set, rows, g, act, Storage::F32, None)
    }
}

fn output(relu: bool) -> Output {
    if relu { Output::Hidden } else { Output::Logits }
}
