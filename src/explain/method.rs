//! The explanation methods: the LRP family (docs/method.md §Heads to §Presets) and the baselines of docs/evaluation.md.

use std::fmt;
use std::str::FromStr;

use crate::backend::{HeadRule, Mask};

/// An explanation method.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    Lrp,
    Clrp,
    Sglrp,
    /// LRP from any vector over the classes, given by the caller.
    Custom(Vec<f32>),
    /// `∂z_t/∂x`.
    Gradient,
    /// The gradient with ReLUs that pass only positive gradients where the input was positive.
    GuidedBackprop,
    /// Grad-CAM at a conv layer's ReLU output (the last conv unless the network says otherwise),
    /// upsampled bilinearly to the input.
    GradCam,
    /// Guided Backprop × Grad-CAM.
    GuidedGradCam,
    /// A uniform random map, reproducible from its seed.
    Random {
        seed: u64,
    },
}

/// What a method needs computed after the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// The LRP pass with the preset's rules.
    Relevance,
    /// A gradient pass down to the input with this ReLU rule.
    Gradient(Mask),
    /// A gradient pass down to the Grad-CAM layer.
    Cam,
}

impl Method {
    /// The three LRP methods of the paper.
    pub const PAPER: [Method; 3] = [Method::Lrp, Method::Clrp, Method::Sglrp];

    /// The columns of the paper's comparison figures: `sglrp explain`'s default.
    pub const FIGURE: [Method; 4] = [
        Method::GuidedGradCam,
        Method::Lrp,
        Method::Clrp,
        Method::Sglrp,
    ];

    /// Every method a user can name, in the order of the paper's figures.
    pub const NAMED: [Method; 8] = [
        Method::Gradient,
        Method::GuidedBackprop,
        Method::GradCam,
        Method::GuidedGradCam,
        Method::Random { seed: 0 },
        Method::Lrp,
        Method::Clrp,
        Method::Sglrp,
    ];

    /// The rule of this method's head; a custom head is row `custom_row` of the caller's.
    pub(crate) fn head_rule(&self, custom_row: usize) -> HeadRule {
        match self {
            Method::Lrp => HeadRule::Lrp,
            Method::Clrp => HeadRule::Clrp,
            Method::Sglrp => HeadRule::Sglrp,
            Method::Custom(_) => HeadRule::Custom(custom_row),
            // The baselines differentiate the target's logit.
            _ => HeadRule::OneHot,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Method::Lrp => "lrp",
            Method::Clrp => "clrp",
            Method::Sglrp => "sglrp",
            Method::Custom(_) => "custom",
            Method::Gradient => "gradient",
            Method::GuidedBackprop => "guided_backprop",
            Method::GradCam => "gradcam",
            Method::GuidedGradCam => "guided_gradcam",
            Method::Random { .. } => "random",
        }
    }

    /// A name for captions: `LRP`, `Guided Grad-CAM`.
    pub fn title(&self) -> &'static str {
        match self {
            Method::Lrp => "LRP",
            Method::Clrp => "CLRP",
            Method::Sglrp => "SGLRP",
            Method::Custom(_) => "custom",
            Method::Gradient => "Gradient",
            Method::GuidedBackprop => "Guided Backprop",
            Method::GradCam => "Grad-CAM",
            Method::GuidedGradCam => "Guided Grad-CAM",
            Method::Random { .. } => "Random",
        }
    }

    /// Whether the method is one of the LRP family (relevance), rather than a baseline.
    pub fn is_lrp(&self) -> bool {
        self.passes().contains(&Pass::Relevance)
    }

    /// Channels of the method's map: 3 for input-space maps, 1 for Grad-CAM and Random.
    pub fn channels(&self) -> usize {
        match self {
            Method::GradCam | Method::Random { .. } => 1,
            _ => 3,
        }
    }

    /// Arithmetic of one explanation with one head, from the forward cost of each layer: the
    /// forward pass, then each backward pass the method needs. A relevance pass costs two
    /// forward-sized products per layer (the z⁺ quotient and the redistribution), a gradient
    /// pass one (the transposed product), and Grad-CAM's pass only the layers from `cam_stop` on.
    pub fn flops(&self, forward_per_layer: &[f64], cam_stop: usize) -> f64 {
        let forward: f64 = forward_per_layer.iter().sum();
        let cam: f64 = forward_per_layer.iter().skip(cam_stop).sum();
        forward
            + self
                .passes()
                .iter()
                .map(|pass| match pass {
                    Pass::Relevance => 2.0 * forward,
                    Pass::Gradient(_) => forward,
                    Pass::Cam => cam,
                })
                .sum::<f64>()
    }

    pub(crate) fn passes(&self) -> &'static [Pass] {
        match self {
            Method::Lrp | Method::Clrp | Method::Sglrp | Method::Custom(_) => &[Pass::Relevance],
            Method::Gradient => &[Pass::Gradient(Mask::Relu)],
            Method::GuidedBackprop => &[Pass::Gradient(Mask::Guided)],
            Method::GradCam => &[Pass::Cam],
            Method::GuidedGradCam => &[Pass::Gradient(Mask::Guided), Pass::Cam],
            Method::Random { .. } => &[],
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let key = s.to_ascii_lowercase().replace('-', "_");
        let key = match key.as_str() {
            "gbp" | "guidedbackprop" => "guided_backprop",
            "grad_cam" => "gradcam",
            "guided_grad_cam" | "guidedgradcam" => "guided_gradcam",
            other => other,
        };
        Method::NAMED
            .into_iter()
            .find(|m| m.name() == key)
            .ok_or_else(|| {
                let names: Vec<&str> = Method::NAMED.iter().map(Method::name).collect();
                format!(
                    "unknown method `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for m in Method::NAMED {
            assert_eq!(m.name().parse::<Method>().unwrap(), m);
        }
        assert_eq!("Grad-CAM".parse::<Method>().unwrap(), Method::GradCam);
        assert!(
            "deconvnet"
                .parse::<Method>()
                .unwrap_err()
                .contains("guided_gradcam")
        );
    }

    #[test]
    fn each_method_costs_the_passes_it_runs() {
        // Forward 10; Grad-CAM backpropagates the layers from index 2 on (3 + 4 = 7).
        let layers = [1.0, 2.0, 3.0, 4.0];
        let cost = |m: Method| m.flops(&layers, 2);
        for m in [Method::Lrp, Method::Clrp, Method::Sglrp] {
            assert_eq!(cost(m), 30.0);
        }
        assert_eq!(cost(Method::Gradient), 20.0);
        assert_eq!(cost(Method::GuidedBackprop), 20.0);
        assert_eq!(cost(Method::GradCam), 17.0);
        assert_eq!(cost(Method::GuidedGradCam), 27.0);
        assert_eq!(cost(Method::Random { seed: 1 }), 10.0);
    }
}
