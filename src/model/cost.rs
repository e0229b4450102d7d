//! The arithmetic of a network, per layer and image: parameters and FLOPs (a multiply-add
//! counts 2; ReLU, pooling, bias and division are left out).
//!
//! A forward pass costs `2·H·W·Cin·Cout·9` per conv and `2·in·out` per dense layer. One
//! explanation (one method, one target) adds, per layer, the z⁺ denominator (a forward-sized
//! product) and the transposed product (docs/method.md §Rules); the first conv's z^B rule runs both on the
//! doubled input `[x − l | x − h]`, so it costs twice that. Each further method or target of the
//! same image shares the forward pass and the denominators and adds only the transposed
//! products; the `innvestigate` preset doubles those (two passes per explanation).

use super::{Dims, LayerSpec};

/// One layer's parameters and FLOPs for one image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerCost {
    pub params: u64,
    pub forward: u64,
    pub denominator: u64,
    pub transpose: u64,
}

/// The cost of every layer, from the layer list and its dims ([`super::infer_dims`]). Counts
/// saturate at `u64::MAX`, so that dims of any size are safe to pass.
pub fn layer_costs(specs: &[LayerSpec], dims: &[(Dims, Dims)]) -> Vec<LayerCost> {
    let product = |factors: &[usize]| {
        factors
            .iter()
            .fold(1u64, |n, &f| n.saturating_mul(f as u64))
    };
    specs
        .iter()
        .zip(dims)
        .enumerate()
        .map(|(i, (spec, (input, output)))| match spec {
            LayerSpec::Conv(_) => {
                let macs = product(&[output.h, output.w, input.c, output.c, 9]);
                // z^B: the first conv's rule runs on 2·Cin input channels.
                let rule = macs.saturating_mul(if i == 0 { 2 } else { 1 });
                LayerCost {
                    params: product(&[output.c, input.c, 9]).saturating_add(output.c as u64),
                    forward: macs.saturating_mul(2),
                    denominator: rule.saturating_mul(2),
                    transpose: rule.saturating_mul(2),
                }
            }
            LayerSpec::Dense(_) => {
                let macs = product(&[input.len(), output.c]);
                LayerCost {
                    params: macs.saturating_add(output.c as u64),
                    forward: macs.saturating_mul(2),
                    denominator: macs.saturating_mul(2),
                    transpose: macs.saturating_mul(2),
                }
            }
            _ => LayerCost::default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{infer_dims, vgg16};

    #[test]
    fn vgg16_has_its_textbook_arithmetic() {
        let specs = vgg16(1000);
        let costs = layer_costs(&specs, &infer_dims(&specs, 224).unwrap());
        let forward: u64 = costs.iter().map(|c| c.forward).sum();
        let params: u64 = costs.iter().map(|c| c.params).sum();
        // 15.5 G multiply-adds, 138,357,544 parameters.
        assert!(
            (forward as f64 / 2e9 - 15.47).abs() < 0.05,
            "{}",
            forward as f64 / 2e9
        );
        assert_eq!(params, 138_357_544);
    }

    #[test]
    fn small_network_by_hand() {
        let specs = LayerSpec::parse_list("conv2 pool flatten dense3").unwrap();
        let c = layer_costs(&specs, &infer_dims(&specs, 4).unwrap());
        assert_eq!(c[0].forward, 2 * 16 * 3 * 2 * 9);
        assert_eq!(c[0].params, 56);
        assert_eq!(c[0].denominator, 2 * c[0].forward);
        assert_eq!(c[3].forward, 2 * 8 * 3);
        assert_eq!(c[3].params, 27);
        assert_eq!(c[1], LayerCost::default());
    }
}
