//! Which kernel runs an op: one table keyed by (op, variant, precision), instead of flags in
//! the launchers. The SIMT kernels and their `_v1` direct checkers compute in f32; tensor-core
//! kernels (TF32, BF16, 3×TF32) and, later, sm_90a kernels are rows of the same table. A
//! precision without its own row falls back to the variant's f32 kernel, and
//! [`fallback_note`] says so.

use crate::backend::Precision;

/// The ops that have more than one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    ConvForward,
    ConvDual,
    ConvQuotient,
    ConvTranspose,
}

/// A family of kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The tiled SIMT implicit GEMMs of `conv_tile.cuh`.
    Simt,
    /// The direct `_v1` loops, one thread per output: the checkers.
    Direct,
}

/// A registered kernel: its entry point and the arithmetic it computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub op: Op,
    pub variant: Variant,
    pub precision: Precision,
    pub kernel: &'static str,
}

const fn entry(op: Op, variant: Variant, precision: Precision, kernel: &'static str) -> Entry {
    Entry {
        op,
        variant,
        precision,
        kernel,
    }
}

use Op::*;
use Precision::F32;
use Variant::*;

/// Every kernel of an op with variants.
pub const TABLE: &[Entry] = &[
    entry(ConvForward, Simt, F32, "conv3x3_forward"),
    entry(ConvForward, Direct, F32, "conv3x3_forward_v1"),
    entry(ConvDual, Simt, F32, "conv3x3_dual"),
    entry(ConvDual, Direct, F32, "conv3x3_dual_v1"),
    entry(ConvQuotient, Simt, F32, "conv_quotient"),
    entry(ConvQuotient, Direct, F32, "conv_quotient_v1"),
    entry(ConvTranspose, Simt, F32, "conv_transpose"),
    entry(ConvTranspose, Direct, F32, "conv_transpose_v1"),
];

/// The kernel for `op` in `variant` at `precision`: its own row, else the variant's f32 row.
pub fn select(op: Op, variant: Variant, precision: Precision) -> &'static Entry {
    let find = |p: Precision| {
        TABLE
            .iter()
            .find(|e| e.op == op && e.variant == variant && e.precision == p)
    };
    find(precision)
        .or_else(|| find(F32))
        .expect("every op has an f32 kernel in every variant")
}

/// A note for the user when some op of `variant` has no kernel at `precision` and runs in f32.
pub fn fallback_note(variant: Variant, precision: Precision) -> Option<String> {
    let ops = [ConvForward, ConvDual, ConvQuotient, ConvTranspose];
    let missing: Vec<String> = ops
        .into_iter()
        .filter(|&op| select(op, variant, precision).precision != precision)
        .map(|op| format!("{op:?}"))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "no {precision} kernels in this build for {}: they run the f32 {variant:?} kernels",
            missing.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_one_kernel_per_variant_and_precision() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert!(
                    (a.op, a.variant, a.precision) != (b.op, b.variant, b.precision),
                    "{a:?} and {b:?} share a key"
                );
            }
        }
        for op in [ConvForward, ConvDual, ConvQuotient, ConvTranspose] {
            assert_ne!(select(op, Simt, F32).kernel, select(op, Direct, F32).kernel);
            assert!(select(op, Direct, F32).kernel.ends_with("_v1"));
        }
    }

    #[test]
    fn a_missing_precision_falls_back_to_f32_and_says_so() {
        let e = select(ConvDual, Simt, Precision::Bf16);
        assert_eq!((e.kernel, e.precision), ("conv3x3_dual", F32));
        assert_eq!(fallback_note(Simt, F32), None);
        let note = fallback_note(Simt, Precision::Tf32).unwrap();
        assert!(note.contains("tf32") && note.contains("ConvDual"), "{note}");
    }
}
