//! A VGG-family network described by data (docs/method.md §Network): the layer sequence, parsed from the compact
//! token form `conv64 conv64 pool … flatten dense4096 dense10`, and the shapes it implies.

use std::fmt;

use crate::error::{Error, Result};

/// One layer of the description. `Affine` (a batch-norm in inference form after a ReLU) only
/// appears in files: the loader folds it into the next layer, so built models never contain it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerSpec {
    /// 3×3 convolution, stride 1, zero padding 1, bias, ReLU; the number of output channels.
    Conv(usize),
    /// 2×2 max pooling, stride 2, floor.
    Pool,
    Flatten,
    /// Dense layer with bias; ReLU except for the last layer; the number of outputs.
    Dense(usize),
    Affine,
}

impl LayerSpec {
    /// Parses the token form, e.g. `conv64 pool flatten dense10`.
    pub fn parse_list(text: &str) -> Result<Vec<LayerSpec>> {
        text.split_whitespace()
            .map(|token| {
                let width = |rest: &str| {
                    rest.parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| {
                            Error::Architecture(format!(
                                "`{token}`: expected a positive width after the layer kind"
                            ))
                        })
                };
                match token {
                    "pool" => Ok(LayerSpec::Pool),
                    "flatten" => Ok(LayerSpec::Flatten),
                    "affine" => Ok(LayerSpec::Affine),
                    _ if token.starts_with("conv") => width(&token[4..]).map(LayerSpec::Conv),
                    _ if token.starts_with("dense") => width(&token[5..]).map(LayerSpec::Dense),
                    _ => Err(Error::Architecture(format!(
                        "unknown layer `{token}` (expected convC, pool, flatten, denseN or affine)"
                    ))),
                }
            })
            .collect()
    }

    /// The token form of a whole list.
    pub fn format_list(layers: &[LayerSpec]) -> String {
        layers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSpec::Conv(c) => write!(f, "conv{c}"),
            LayerSpec::Pool => write!(f, "pool"),
            LayerSpec::Flatten => write!(f, "flatten"),
            LayerSpec::Dense(n) => write!(f, "dense{n}"),
            LayerSpec::Affine => write!(f, "affine"),
        }
    }
}

/// The VGG16 conv stack and its ImageNet head (docs/method.md §Network).
pub fn vgg16(classes: usize) -> Vec<LayerSpec> {
    use LayerSpec::*;
    let mut layers = Vec::new();
    for (width, repeats) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)] {
        layers.extend(std::iter::repeat_n(Conv(width), repeats));
        layers.push(Pool);
    }
    layers.extend([Flatten, Dense(4096), Dense(4096), Dense(classes)]);
    layers
}

/// The largest input side a model may declare or imply, in pixels. VGG16 keeps about 1.2 KB of
/// activations per input pixel and image (5 GB per image at 2048); no VGG checkpoint in use comes
/// near it, and larger sides only serve to exhaust memory.
pub const MAX_INPUT_SIDE: usize = 2048;

/// A feature map: height, width, channels. After `flatten`, `h = w = 1` and `c` is the width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

/// The index of the layer named `name` among `names` ([`crate::model::Model::layer_names`]), or
/// an error that lists them.
pub fn layer_index(names: &[String], name: &str) -> Result<usize> {
    names.iter().position(|n| n == name).ok_or_else(|| {
        Error::Request(format!(
            "no layer `{name}` in this model (its layers: {})",
            names.join(", ")
        ))
    })
}

/// The shape of a map at the input of a layer of kind `spec` with input `dims`: `(C, H, W)`, or
/// `(F,)` at a dense layer (features in (H, W, C) order, as flatten leaves them).
pub fn map_shape(spec: LayerSpec, input: Dims) -> Vec<usize> {
    match spec {
        LayerSpec::Dense(_) => vec![input.len()],
        _ => vec![input.c, input.h, input.w],
    }
}

impl Dims {
    /// The number of values, saturating: dims that [`infer_dims`] accepts never reach the bound.
    pub fn len(&self) -> usize {
        self.h.saturating_mul(self.w).saturating_mul(self.c)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn checked_len(&self) -> Option<usize> {
        self.h.checked_mul(self.w)?.checked_mul(self.c)
    }
}

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.h == 1 && self.w == 1 {
            write!(f, "{}", self.c)
        } else {
            write!(f, "{}×{}×{}", self.h, self.w, self.c)
        }
    }
}

/// The input and output dims of every layer as the layers compute them, for any sequence: a conv
/// sets the channels, a pool halves the sides (floor), `flatten` makes one vector, a dense layer
/// sets its width. Whether the sequence is a valid network is [`infer_dims`]'s question.
pub fn layer_dims(layers: &[LayerSpec], side: usize) -> Vec<(Dims, Dims)> {
    let mut dims = Dims {
        h: side,
        w: side,
        c: 3,
    };
    layers
        .iter()
        .map(|&layer| {
            let input = dims;
            dims = match layer {
                LayerSpec::Conv(c) => Dims { c, ..dims },
                LayerSpec::Pool => Dims {
                    h: dims.h / 2,
                    w: dims.w / 2,
                    ..dims
                },
                LayerSpec::Flatten => Dims {
                    h: 1,
                    w: 1,
                    c: dims.len(),
                },
                LayerSpec::Dense(n) => Dims { h: 1, w: 1, c: n },
                LayerSpec::Affine => dims,
            };
            (input, dims)
        })
        .collect()
}

/// The input and output dims of every layer for an input of `side × side × 3`, checking the
/// sequence is a valid VGG-family network: an input side of 1 to [`MAX_INPUT_SIDE`], a conv first,
/// convs and pools before one flatten, dense layers after it, at least one dense layer, no layer
/// without outputs, no pool that empties the map, no size that overflows, `affine` only after a
/// conv/dense layer's ReLU and before a conv/dense layer.
pub fn infer_dims(layers: &[LayerSpec], side: usize) -> Result<Vec<(Dims, Dims)>> {
    let arch = |m: String| Err(Error::Architecture(m));
    if !(1..=MAX_INPUT_SIDE).contains(&side) {
        return arch(format!(
            "input side {side}: expected 1 to {MAX_INPUT_SIDE} pixels"
        ));
    }
    let dims = layer_dims(layers, side);
    let mut flattened = false;
    for (i, (&layer, (input, output))) in layers.iter().zip(&dims).enumerate() {
        let misplaced = match layer {
            LayerSpec::Conv(_) | LayerSpec::Pool => flattened,
            LayerSpec::Dense(_) => !flattened,
            LayerSpec::Flatten => std::mem::replace(&mut flattened, true),
            LayerSpec::Affine => false,
        };
        if misplaced {
            return arch(format!(
                "layer {i} ({layer}): convs and pools come before `flatten`, dense layers after it"
            ));
        }
        match layer {
            LayerSpec::Conv(0) | LayerSpec::Dense(0) => {
                return arch(format!(
                    "layer {i} ({layer}): a layer needs at least one output"
                ));
            }
            LayerSpec::Pool if input.h < 2 || input.w < 2 => {
                return arch(format!(
                    "layer {i} (pool): a {input} map is too small to pool; use a larger input"
                ));
            }
            LayerSpec::Affine => {
                let next = layers.get(i + 1).copied();
                let next_ok = matches!(next, Some(LayerSpec::Conv(_) | LayerSpec::Dense(_)))
                    || (next == Some(LayerSpec::Flatten)
                        && matches!(layers.get(i + 2), Some(LayerSpec::Dense(_))));
                let after_relu = matches!(
                    i.checked_sub(1).map(|p| layers[p]),
                    Some(LayerSpec::Conv(_) | LayerSpec::Dense(_))
                );
                if !next_ok || !after_relu {
                    return arch(format!(
                        "layer {i} (affine): must follow a conv/dense layer's ReLU and precede a conv or dense layer"
                    ));
                }
            }
            _ => {}
        }
        if input.checked_len().is_none() || output.checked_len().is_none() {
            return arch(format!(
                "layer {i} ({layer}): a {}×{}×{} map is too large to address",
                output.h, output.w, output.c
            ));
        }
    }
    if !matches!(layers.first(), Some(LayerSpec::Conv(_))) {
        return arch("a VGG-family network starts with a conv layer".into());
    }
    if !matches!(layers.last(), Some(LayerSpec::Dense(_))) {
        return arch("the last layer must be a dense layer (the logits)".into());
    }
    Ok(dims)
}

/// The torchvision/timm name of a standard VGG conv stack (convs per block of five), if it is one.
pub fn vgg_name(layers: &[LayerSpec]) -> Option<&'static str> {
    let mut blocks = vec![0usize];
    for layer in layers {
        match layer {
            LayerSpec::Conv(_) => *blocks.last_mut()? += 1,
            LayerSpec::Pool => blocks.push(0),
            _ => {}
        }
    }
    if blocks.pop() != Some(0) {
        return None;
    }
    match blocks.as_slice() {
        [1, 1, 2, 2, 2] => Some("vgg11"),
        [2, 2, 2, 2, 2] => Some("vgg13"),
        [2, 2, 3, 3, 3] => Some("vgg16"),
        [2, 2, 4, 4, 4] => Some("vgg19"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vgg16_shapes_follow_the_input_side() {
        let layers = vgg16(1000);
        assert_eq!(
            LayerSpec::parse_list(&LayerSpec::format_list(&layers)).unwrap(),
            layers
        );
        for (side, flat) in [(224, 25088), (240, 25088), (64, 2048), (32, 512)] {
            let dims = infer_dims(&layers, side).unwrap();
            let flatten = layers
                .iter()
                .position(|l| *l == LayerSpec::Flatten)
                .unwrap();
            assert_eq!(dims[flatten].1.c, flat, "side {side}");
        }
    }

    #[test]
    fn odd_sides_pool_with_floor() {
        let layers = LayerSpec::parse_list("conv4 pool pool pool flatten dense2").unwrap();
        let dims = infer_dims(&layers, 30).unwrap();
        assert_eq!(dims[3].1, Dims { h: 3, w: 3, c: 4 });
    }

    #[test]
    fn invalid_sequences_are_errors() {
        for text in [
            "conv8 flatten",
            "dense4 conv8",
            "conv8 pool flatten dense4 pool dense2",
            "conv8 flatten flatten dense2",
            "affine conv8 flatten dense2",
            "conv8 affine pool flatten dense2",
            "conv0 flatten dense2",
            "conv8 relu flatten dense2",
            "flatten dense2",
        ] {
            let parsed = LayerSpec::parse_list(text).and_then(|l| infer_dims(&l, 32));
            assert!(parsed.is_err(), "{text} should be rejected");
        }
        let tiny = LayerSpec::parse_list("conv8 pool pool pool flatten dense2").unwrap();
        assert!(infer_dims(&tiny, 4).is_err());
        for widthless in [
            vec![LayerSpec::Conv(0), LayerSpec::Flatten, LayerSpec::Dense(2)],
            vec![LayerSpec::Conv(4), LayerSpec::Flatten, LayerSpec::Dense(0)],
        ] {
            let err = infer_dims(&widthless, 32).unwrap_err().to_string();
            assert!(err.contains("at least one output"), "{err}");
        }
    }

    #[test]
    fn sizes_are_bounded_and_never_overflow() {
        let layers = LayerSpec::parse_list("conv4 pool flatten dense2").unwrap();
        for side in [0, MAX_INPUT_SIDE + 1, 1 << 32, usize::MAX] {
            let err = infer_dims(&layers, side).unwrap_err().to_string();
            assert!(err.contains("expected 1 to 2048"), "{side}: {err}");
        }
        assert!(infer_dims(&layers, MAX_INPUT_SIDE).is_ok());
        let huge = [
            LayerSpec::Conv(usize::MAX / 2),
            LayerSpec::Flatten,
            LayerSpec::Dense(2),
        ];
        let err = infer_dims(&huge, 64).unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
        // The shapes of any sequence are defined, saturating.
        let dims = layer_dims(&huge, usize::MAX);
        assert_eq!(dims[1].1.c, usize::MAX);
    }

    #[test]
    fn standard_conv_stacks_are_named() {
        assert_eq!(vgg_name(&vgg16(1000)), Some("vgg16"));
        let vgg11 = "conv4 pool conv8 pool conv16 conv16 pool conv32 conv32 pool conv32 conv32 pool flatten dense10";
        assert_eq!(
            vgg_name(&LayerSpec::parse_list(vgg11).unwrap()),
            Some("vgg11")
        );
        let short = "conv4 pool conv8 pool flatten dense10";
        assert_eq!(vgg_name(&LayerSpec::parse_list(short).unwrap()), None);
        let unpooled = "conv4 pool conv8 pool conv16 conv16 pool conv32 conv32 pool conv32 conv32 flatten dense10";
        assert_eq!(vgg_name(&LayerSpec::parse_list(unpooled).unwrap()), None);
    }
}
