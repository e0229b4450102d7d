//! A VGG-family network described by data (SPEC §1): the layer sequence, parsed from the compact
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

/// The VGG16 conv stack and its ImageNet head (SPEC §1).
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

/// A feature map: height, width, channels. After `flatten`, `h = w = 1` and `c` is the width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Dims {
    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

/// The input and output dims of every layer for an input of `side × side × 3`, checking the
/// sequence is a valid VGG-family network: a conv first, convs and pools before one flatten, dense layers after
/// it, at least one dense layer, no pool that empties the map, `affine` only before a conv/dense.
pub fn infer_dims(layers: &[LayerSpec], side: usize) -> Result<Vec<(Dims, Dims)>> {
    let arch = |m: String| Error::Architecture(m);
    let mut dims = Dims {
        h: side,
        w: side,
        c: 3,
    };
    let mut flattened = false;
    let mut out = Vec::with_capacity(layers.len());
    for (i, &layer) in layers.iter().enumerate() {
        let input = dims;
        dims = match layer {
            LayerSpec::Conv(c) if !flattened => Dims { c, ..dims },
            LayerSpec::Pool if !flattened => {
                if dims.h < 2 || dims.w < 2 {
                    return Err(arch(format!(
                        "layer {i} (pool): a {} map is too small to pool; use a larger input",
                        dims
                    )));
                }
                Dims {
                    h: dims.h / 2,
                    w: dims.w / 2,
                    ..dims
                }
            }
            LayerSpec::Flatten if !flattened => {
                flattened = true;
                Dims {
                    h: 1,
                    w: 1,
                    c: dims.len(),
                }
            }
            LayerSpec::Dense(n) if flattened => Dims { h: 1, w: 1, c: n },
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
                    return Err(arch(format!(
                        "layer {i} (affine): must follow a conv/dense layer's ReLU and precede a conv or dense layer"
                    )));
                }
                dims
            }
            _ => {
                return Err(arch(format!(
                    "layer {i} ({layer}): convs and pools come before `flatten`, dense layers after it"
                )));
            }
        };
        out.push((input, dims));
    }
    if !matches!(layers.first(), Some(LayerSpec::Conv(_))) {
        return Err(arch("a VGG-family network starts with a conv layer".into()));
    }
    if !matches!(layers.last(), Some(LayerSpec::Dense(_))) {
        return Err(arch(
            "the last layer must be a dense layer (the logits)".into(),
        ));
    }
    Ok(out)
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
    }
}
