//! Which kernel runs an op: one table keyed by (op, variant, precision), instead of flags in
//! the launchers. The SIMT kernels and their `_v1` direct checkers compute in f32; the
//! tensor-core kernels are rows of the same table, one per precision (f32 runs 3×TF32, which is
//! f32-accurate), and sm_90a kernels would be another variant. A precision without its own row
//! runs the variant's f32 kernel, and a variant without a row for an op runs the SIMT kernel:
//! [`fallback_note`] says when the precision asked for is not the one computed. One kernel is
//! picked by the layer's shape instead: [`narrow_transpose`].

use super::config::{MmaMath, MmaOp, NARROW_MAX_CIN};
use crate::backend::Precision;

/// The ops that have more than one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    ConvForward,
    ConvDual,
    ConvQuotient,
    ConvTranspose,
    DenseForward,
    DenseDual,
    DenseQuotient,
    DenseTranspose,
}

impl Op {
    pub const ALL: [Op; 8] = [
        ConvForward,
        ConvDual,
        ConvQuotient,
        ConvTranspose,
        DenseForward,
        DenseDual,
        DenseQuotient,
        DenseTranspose,
    ];

    /// The op's name in messages: `conv_dual`.
    pub fn name(self) -> &'static str {
        match self {
            ConvForward => "conv_forward",
            ConvDual => "conv_dual",
            ConvQuotient => "conv_quotient",
            ConvTranspose => "conv_transpose",
            DenseForward => "dense_forward",
            DenseDual => "dense_dual",
            DenseQuotient => "dense_quotient",
            DenseTranspose => "dense_transpose",
        }
    }
}

/// A family of kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The tensor-core implicit GEMMs of `conv_mma.cu` and `dense_mma.cu` (sm_80 and later).
    Mma,
    /// The tiled SIMT implicit GEMMs of `conv_tile.cuh` and the split-K dense kernels.
    Simt,
    /// The direct `_v1` loops, one thread per output: the checkers.
    Direct,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Mma => "tensor cores",
            Simt => "SIMT",
            Direct => "direct",
        }
    }
}

/// What a row launches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// One entry point (the dense ops: the first of their kernels).
    Named(&'static str),
    /// A tensor-core op in one math; the tile table of `config.rs` picks the entry point per
    /// layer (`conv_mma_fwd_tf32x3_l` or `_s`).
    Mma(MmaOp, MmaMath),
}

/// A registered kernel: its entry point and the arithmetic it computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub op: Op,
    pub variant: Variant,
    pub precision: Precision,
    pub kernel: Kernel,
}

impl Entry {
    /// The entry point, or the family of entry points for the tensor-core rows
    /// (`conv_mma_fwd_tf32x3_{l,s}`, `dense_mma_fwd_bf16`).
    pub fn kernel_name(&self) -> String {
        match self.kernel {
            Kernel::Named(name) => name.to_string(),
            Kernel::Mma(op, math) => {
                let layer = if matches!(self.op, ConvForward | ConvDual | ConvTranspose) {
                    "conv"
                } else {
                    "dense"
                };
                let tiles = if layer == "conv" { "_{l,s}" } else { "" };
                format!("{layer}_mma_{}_{}{tiles}", op.name(), math.name())
            }
        }
    }
}

const fn named(op: Op, variant: Variant, kernel: &'static str) -> Entry {
    Entry {
        op,
        variant,
        precision: F32,
        kernel: Kernel::Named(kernel),
    }
}

const fn mma(op: Op, precision: Precision, mop: MmaOp, math: MmaMath) -> Entry {
    Entry {
        op,
        variant: Mma,
        precision,
        kernel: Kernel::Mma(mop, math),
    }
}

use Op::*;
use Precision::{Bf16, F32, Tf32};
use Variant::*;

/// The three tensor-core rows of an op: f32 as 3×TF32, tf32, bf16.
const fn mma_rows(op: Op, mop: MmaOp) -> [Entry; 3] {
    [
        mma(op, F32, mop, MmaMath::Tf32x3),
        mma(op, Tf32, mop, MmaMath::Tf32),
        mma(op, Bf16, mop, MmaMath::Bf16),
    ]
}

const SIMT_AND_DIRECT: [Entry; 12] = [
    named(ConvForward, Simt, "conv3x3_forward"),
    named(ConvForward, Direct, "conv3x3_forward_v1"),
    named(ConvDual, Simt, "conv3x3_dual"),
    named(ConvDual, Direct, "conv3x3_dual_v1"),
    named(ConvQuotient, Simt, "conv_quotient"),
    named(ConvQuotient, Direct, "conv_quotient_v1"),
    named(ConvTranspose, Simt, "conv_transpose"),
    named(ConvTranspose, Direct, "conv_transpose_v1"),
    named(DenseForward, Simt, "dense_forward_partial"),
    named(DenseDual, Simt, "dense_dual"),
    named(DenseQuotient, Simt, "dense_quotient_partial"),
    named(DenseTranspose, Simt, "dense_transpose_partial"),
];

const MMA_ROWS: [[Entry; 3]; 6] = [
    mma_rows(ConvForward, MmaOp::Fwd),
    mma_rows(ConvDual, MmaOp::Dual),
    mma_rows(ConvTranspose, MmaOp::T),
    mma_rows(DenseForward, MmaOp::Fwd),
    mma_rows(DenseDual, MmaOp::Dual),
    mma_rows(DenseTranspose, MmaOp::T),
];

/// The transposed conv of a layer with few input channels (the z^B first layer's 6).
pub const NARROW_TRANSPOSE: &str = "conv_transpose_narrow";

/// Whether the transposed conv of a layer with `cin` input channels runs [`NARROW_TRANSPOSE`]
/// (in f32) instead of its row: for `cin ≤ NARROW_MAX_CIN`, in every variant but the direct
/// checkers, which stay independent of it. A tile over so few output channels, SIMT or tensor
/// cores, would leave most of its width idle.
pub fn narrow_transpose(variant: Variant, cin: usize) -> bool {
    variant != Direct && cin <= NARROW_MAX_CIN as usize
}

/// Every registered kernel.
pub fn table() -> impl Iterator<Item = &'static Entry> {
    SIMT_AND_DIRECT.iter().chain(MMA_ROWS.iter().flatten())
}

/// The kernel for `op` in `variant` at `precision`: its own row, else the variant's f32 row,
/// else the SIMT f32 row (every op has one).
pub fn select(op: Op, variant: Variant, precision: Precision) -> &'static Entry {
    let find = |v: Variant, p: Precision| {
        table().find(|e| e.op == op && e.variant == v && e.precision == p)
    };
    find(variant, precision)
        .or_else(|| find(variant, F32))
        .or_else(|| find(Simt, F32))
        .expect("every op has an f32 SIMT kernel")
}

/// A note for the user when an op that `variant` implements runs at another precision than the
/// one asked for (the ops a variant lacks run the SIMT f32 kernels, more accurate; they are
/// listed by `sglrp info`).
pub fn fallback_note(variant: Variant, precision: Precision) -> Option<String> {
    let missing: Vec<&str> = Op::ALL
        .into_iter()
        .filter(|&op| table().any(|e| e.op == op && e.variant == variant))
        .filter(|&op| select(op, variant, precision).precision != precision)
        .map(Op::name)
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "no {precision} {} kernels for {}: they run in f32",
            variant.name(),
            missing.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_one_kernel_per_variant_and_precision() {
        let rows: Vec<&Entry> = table().collect();
        for (i, a) in rows.iter().enumerate() {
            for b in &rows[i + 1..] {
                assert!(
                    (a.op, a.variant, a.precision) != (b.op, b.variant, b.precision),
                    "{a:?} and {b:?} share a key"
                );
            }
        }
        for op in [ConvForward, ConvDual, ConvQuotient, ConvTranspose] {
            assert_ne!(select(op, Simt, F32).kernel, select(op, Direct, F32).kernel);
            assert!(select(op, Direct, F32).kernel_name().ends_with("_v1"));
        }
    }

    #[test]
    fn each_precision_has_its_tensor_core_math() {
        for (precision, math) in [
            (F32, MmaMath::Tf32x3),
            (Tf32, MmaMath::Tf32),
            (Bf16, MmaMath::Bf16),
        ] {
            let e = select(ConvDual, Mma, precision);
            assert_eq!(e.kernel, Kernel::Mma(MmaOp::Dual, math));
            assert_eq!(e.precision, precision);
        }
        assert_eq!(
            select(DenseTranspose, Mma, Bf16).kernel_name(),
            "dense_mma_t_bf16"
        );
        assert_eq!(
            select(ConvForward, Mma, F32).kernel_name(),
            "conv_mma_fwd_tf32x3_{l,s}"
        );
        // The quotients have no tensor-core kernel: the SIMT ones run, without a note.
        assert_eq!(
            select(ConvQuotient, Mma, Tf32).kernel,
            Kernel::Named("conv_quotient")
        );
        assert_eq!(fallback_note(Mma, Tf32), None);
        assert_eq!(fallback_note(Mma, Bf16), None);
    }

    #[test]
    fn narrow_layers_take_the_narrow_transpose_except_in_the_checkers() {
        assert!(narrow_transpose(Simt, 6) && narrow_transpose(Mma, 1));
        assert!(narrow_transpose(Mma, NARROW_MAX_CIN as usize));
        assert!(!narrow_transpose(Mma, NARROW_MAX_CIN as usize + 1));
        assert!(!narrow_transpose(Direct, 6));
    }

    #[test]
    fn a_missing_precision_falls_back_to_f32_and_says_so() {
        let e = select(ConvDual, Simt, Bf16);
        assert_eq!(
            (e.kernel, e.precision),
            (Kernel::Named("conv3x3_dual"), F32)
        );
        assert_eq!(fallback_note(Simt, F32), None);
        let note = fallback_note(Simt, Tf32).unwrap();
        assert!(
            note.contains("tf32") && note.contains("conv_dual"),
            "{note}"
        );
        assert_eq!(
            select(DenseDual, Direct, F32).kernel,
            Kernel::Named("dense_dual")
        );
    }
}
