//! The logits of one image with rectangles of its input replaced by the dataset mean (0 after
//! pre-processing), for maximal patch masking (docs/evaluation.md). A small patch changes only a small
//! window of each conv and pool layer's output, so only that window is recomputed: a crop of the
//! layer's cached input, one pixel wider than the window on each side that is not an image
//! border, goes through the layer, and the window of its output replaces the cached one. The
//! dense layers then run on all the variants at once.

use std::collections::HashMap;

use crate::backend::Backend;
use crate::error::Result;
use crate::explain::{Forward, Network};
use crate::model::{Dims, LayerSpec};

/// A half-open rectangle of a map: rows `y0..y1`, columns `x0..x1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rect {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

impl Rect {
    fn height(&self) -> usize {
        self.y1 - self.y0
    }

    fn width(&self) -> usize {
        self.x1 - self.x0
    }

    /// Grown by `by` on every side, clipped to an `h × w` map.
    fn grow(&self, by: usize, h: usize, w: usize) -> Rect {
        Rect {
            y0: self.y0.saturating_sub(by),
            y1: (self.y1 + by).min(h),
            x0: self.x0.saturating_sub(by),
            x1: (self.x1 + by).min(w),
        }
    }
}

/// One image's forward activations on the host, ready for occluded re-runs.
pub struct Occlusion<'n, B: Backend> {
    net: &'n Network<B>,
    /// The input of every layer up to and including `flatten`, `(h, w, c)`.
    inputs: Vec<Vec<f32>>,
    flatten: usize,
}

/// A variant's current window: where its map differs from the cached one, and its values there.
struct Window {
    rect: Rect,
    values: Vec<f32>, // (rect rows, rect cols, c)
}

impl<'n, B: Backend> Occlusion<'n, B> {
    /// Takes image `image` of a forward pass.
    pub fn new(net: &'n Network<B>, fwd: &Forward<B>, image: usize) -> Result<Self> {
        let info = net.info();
        let flatten = info
            .specs
            .iter()
            .position(|s| *s == LayerSpec::Flatten)
            .expect("a valid model has a flatten");
        let mut inputs = Vec::with_capacity(flatten + 1);
        for i in 0..=flatten {
            let all = if i == 0 {
                net.input(fwd)?.to_vec()
            } else {
                net.output(fwd, i - 1)?
            };
            let len = info.dims[i].0.len();
            inputs.push(all[image * len..][..len].to_vec());
        }
        Ok(Occlusion {
            net,
            inputs,
            flatten,
        })
    }

    /// The logits with each rectangle (in input pixels) set to zero, one vector per rectangle.
    pub fn logits(&self, rects: &[Rect]) -> Result<Vec<Vec<f32>>> {
        let info = self.net.info();
        let b = self.net.backend();
        let mut windows: Vec<Window> = rects
            .iter()
            .map(|&rect| Window {
                rect,
                values: vec![0.0; rect.height() * rect.width() * 3],
            })
            .collect();
        for i in 0..self.flatten {
            let (input, _) = info.dims[i];
            let conv = matches!(info.specs[i], LayerSpec::Conv(_));
            // The output window each variant needs, and the input crop that yields it.
            let plans: Vec<(Rect, Rect)> = windows
                .iter()
                .map(|win| {
                    if conv {
                        let out = win.rect.grow(1, input.h, input.w);
                        (out, out.grow(1, input.h, input.w))
                    } else {
                        let out = Rect {
                            y0: win.rect.y0 / 2,
                            y1: win.rect.y1.div_ceil(2).min(input.h / 2),
                            x0: win.rect.x0 / 2,
                            x1: win.rect.x1.div_ceil(2).min(input.w / 2),
                        };
                        let crop = Rect {
                            y0: 2 * out.y0,
                            y1: 2 * out.y1,
                            x0: 2 * out.x0,
                            x1: 2 * out.x1,
                        };
                        (out, crop)
                    }
                })
                .collect();
            // Variants whose crops have the same size run as one batch.
            let mut groups: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
            for (v, (_, crop)) in plans.iter().enumerate() {
                groups
                    .entry((crop.height(), crop.width()))
                    .or_default()
                    .push(v);
            }
            let mut next: Vec<Option<Window>> = (0..windows.len()).map(|_| None).collect();
            for ((ch, cw), members) in groups {
                let mut batch = Vec::with_capacity(members.len() * ch * cw * input.c);
                for &v in &members {
                    batch.extend(self.crop(i, &windows[v], plans[v].1));
                }
                let crop_dims = Dims {
                    h: ch,
                    w: cw,
                    c: input.c,
                };
                let (out, _) =
                    self.net
                        .run_layer(i, members.len(), crop_dims, &b.upload(&batch)?)?;
                let out = b.download(&out.expect("convs and pools have an output"))?;
                let (oh, ow) = if conv { (ch, cw) } else { (ch / 2, cw / 2) };
                let oc = info.dims[i].1.c;
                for (k, &v) in members.iter().enumerate() {
                    let (want, crop) = plans[v];
                    let map = &out[k * oh * ow * oc..][..oh * ow * oc];
                    // The window's offset inside the crop's output.
                    let (dy, dx) = if conv {
                        (want.y0 - crop.y0, want.x0 - crop.x0)
                    } else {
                        (0, 0)
                    };
                    let mut values = Vec::with_capacity(want.height() * want.width() * oc);
                    for y in 0..want.height() {
                        let row = ((y + dy) * ow + dx) * oc;
                        values.extend_from_slice(&map[row..row + want.width() * oc]);
                    }
                    next[v] = Some(Window { rect: want, values });
                }
            }
            windows = next
                .into_iter()
                .map(|w| w.expect("every variant ran"))
                .collect();
        }
        // The flattened features of every variant, then the dense layers on all of them.
        let mut features = Vec::with_capacity(windows.len() * self.inputs[self.flatten].len());
        for win in &windows {
            let full = info.dims[self.flatten].0;
            features.extend(self.crop(
                self.flatten,
                win,
                Rect {
                    y0: 0,
                    y1: full.h,
                    x0: 0,
                    x1: full.w,
                },
            ));
        }
        let n = windows.len();
        let mut x = b.upload(&features)?;
        for i in self.flatten + 1..info.specs.len() {
            let (out, _) = self.net.run_layer(i, n, info.dims[i].0, &x)?;
            x = out.expect("dense layers have an output");
        }
        let logits = b.download(&x)?;
        Ok(logits
            .chunks(info.classes.len())
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// The cached input of layer `i` over `crop`, with the variant's window pasted in.
    fn crop(&self, i: usize, win: &Window, crop: Rect) -> Vec<f32> {
        let Dims { w, c, .. } = self.net.info().dims[i].0;
        let cached = &self.inputs[i];
        let mut out = Vec::with_capacity(crop.height() * crop.width() * c);
        for y in crop.y0..crop.y1 {
            out.extend_from_slice(&cached[(y * w + crop.x0) * c..(y * w + crop.x1) * c]);
        }
        let r = win.rect;
        for y in r.y0.max(crop.y0)..r.y1.min(crop.y1) {
            for x in r.x0.max(crop.x0)..r.x1.min(crop.x1) {
                let dst = ((y - crop.y0) * crop.width() + x - crop.x0) * c;
                let src = ((y - r.y0) * r.width() + x - r.x0) * c;
                out[dst..dst + c].copy_from_slice(&win.values[src..src + c]);
            }
        }
        out
    }
}
