//! Pre-processing (docs/method.md §Pre-processing): from an RGB image to the network's input,
//! the z^B bounds that follow from it, and the way back from the input's pixels to the image's.
//!
//! The resize is bilinear with the filter widened when shrinking (as the `image` crate's
//! `Triangle` filter, whose results it reproduces exactly), and computes only the pixels that the
//! crop keeps: beyond the image itself it holds the output and one filter window, whatever the
//! image's size or shape (a 100000×1 image under the crop convention is resized, on paper, to
//! 25600000×256).

use std::collections::VecDeque;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Channel order the network expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    Rgb,
    Bgr,
}

/// How an image of any size becomes `side × side`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Resize both sides to the input side (Keras/caffe).
    Direct,
    /// Resize the shorter side to `side · 256/224`, then crop the centre (torchvision).
    Crop,
}

/// `x_c = (pixel_c · scale − mean_c) / std_c`, channels in the model's order; mean and std are
/// given in that order too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    pub channels: Channels,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub resize: Resize,
}

impl Preprocess {
    pub fn torchvision() -> Self {
        Preprocess {
            channels: Channels::Rgb,
            scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            resize: Resize::Crop,
        }
    }

    pub fn caffe() -> Self {
        Preprocess {
            channels: Channels::Bgr,
            scale: 1.0,
            mean: [103.939, 116.779, 123.68],
            std: [1.0; 3],
            resize: Resize::Direct,
        }
    }

    /// Parses the `sglrp.preprocess` metadata: `torchvision`, `caffe` or a JSON object.
    pub fn parse(text: &str) -> Result<Self> {
        let parsed = match text.trim() {
            "torchvision" => Preprocess::torchvision(),
            "caffe" => Preprocess::caffe(),
            json => serde_json::from_str(json).map_err(|e| {
                Error::Architecture(format!(
                    "pre-processing `{json}`: expected `torchvision`, `caffe` or a JSON object \
                     {{channels, scale, mean, std, resize}} ({e})"
                ))
            })?,
        };
        let finite = parsed.scale.is_finite()
            && parsed.scale > 0.0
            && parsed.mean.iter().all(|m| m.is_finite())
            && parsed.std.iter().all(|s| s.is_finite() && *s > 0.0);
        if !finite {
            return Err(Error::Architecture(format!(
                "pre-processing `{text}`: scale and std must be positive, mean finite"
            )));
        }
        Ok(parsed)
    }

    /// The canonical metadata form: a preset name when it is one, JSON otherwise.
    pub fn to_metadata(&self) -> String {
        if *self == Preprocess::torchvision() {
            "torchvision".into()
        } else if *self == Preprocess::caffe() {
            "caffe".into()
        } else {
            serde_json::to_string(self).expect("plain struct serialises")
        }
    }

    /// The z^B bounds: the pre-processed values of a black and of a white pixel, per channel in
    /// the model's order.
    pub fn bounds(&self) -> ([f32; 3], [f32; 3]) {
        let low = std::array::from_fn(|c| (0.0 - self.mean[c]) / self.std[c]);
        let high = std::array::from_fn(|c| (255.0 * self.scale - self.mean[c]) / self.std[c]);
        (low, high)
    }

    /// Normalises RGB pixels (values 0‥255, layout (H, W, 3)) into the model's input
    /// (H, W, 3) in the model's channel order.
    pub fn normalize(&self, rgb: &[f32]) -> Vec<f32> {
        let order: [usize; 3] = match self.channels {
            Channels::Rgb => [0, 1, 2],
            Channels::Bgr => [2, 1, 0],
        };
        rgb.chunks_exact(3)
            .flat_map(|px| {
                (0..3).map(move |c| (px[order[c]] * self.scale - self.mean[c]) / self.std[c])
            })
            .collect()
    }

    /// Where a `w × h` image lands in the `side × side` input.
    pub fn geometry(&self, (w, h): (u32, u32), side: usize) -> Geometry {
        let side_u = side as u64;
        let (resized, offset) = match self.resize {
            Resize::Direct => ((side_u, side_u), (0, 0)),
            Resize::Crop => {
                let short = (side as f64 * 256.0 / 224.0).round() as u64;
                let (w_f, h_f) = (w.max(1) as f64, h.max(1) as f64);
                let (rw, rh) = if w <= h {
                    (
                        short,
                        ((h_f * short as f64 / w_f).round() as u64).max(short),
                    )
                } else {
                    (
                        ((w_f * short as f64 / h_f).round() as u64).max(short),
                        short,
                    )
                };
                let centre = |r: u64| ((r - side_u) as f64 / 2.0).round() as u64;
                ((rw, rh), (centre(rw), centre(rh)))
            }
        };
        Geometry {
            image: (w, h),
            resized,
            offset,
            side,
        }
    }

    /// Resizes (and crops) an image to `side × side` as the convention says, bilinearly.
    pub fn resize(&self, image: &RgbImage, side: usize) -> RgbImage {
        let (w, h) = image.dimensions();
        let g = self.geometry((w, h), side);
        if (w as u64, h as u64) == g.resized && g.offset == (0, 0) && g.resized.0 == side as u64 {
            return image.clone();
        }
        resample(image, &g)
    }

    /// Where the rectangle `[x0, x1) × [y0, y1)` of a `w × h` image lands in the `side × side`
    /// input that [`Preprocess::resize`] makes, clipped to it; `None` if it falls outside.
    pub fn map_rect(&self, (w, h): (u32, u32), side: usize, rect: [u32; 4]) -> Option<[usize; 4]> {
        let g = self.geometry((w, h), side);
        let side_f = side as f64;
        let (sx, sy) = g.scale();
        let (ox, oy) = (g.offset.0 as f64, g.offset.1 as f64);
        let map = |v: u32, s: f64, o: f64| ((v as f64 * s - o).round().clamp(0.0, side_f)) as usize;
        let [x0, y0, x1, y1] = rect;
        let mapped = [
            map(x0, sx, ox),
            map(y0, sy, oy),
            map(x1, sx, ox),
            map(y1, sy, oy),
        ];
        (mapped[2] > mapped[0] && mapped[3] > mapped[1]).then_some(mapped)
    }

    /// A map in the input's pixels, `(side, side, channels)`, resampled to the pixels of the `w ×
    /// h` image it came from, `(h, w, channels)`: the resize and the crop undone, bilinearly
    /// (pixel centres aligned, edges clamped). Pixels that the crop cut off entirely get 0: the
    /// network never saw them, so they hold no relevance (0 rather than NaN, which would poison sums,
    /// colour maps and arrays). Values are interpolated, not redistributed: the map's sum scales
    /// with the area.
    pub fn to_image_space(
        &self,
        map: &[f32],
        channels: usize,
        side: usize,
        (w, h): (u32, u32),
    ) -> Result<Vec<f32>> {
        let expected = side * side * channels;
        if map.len() != expected || side == 0 {
            return Err(Error::Request(format!(
                "map of {} values; a ({side}, {side}, {channels}) map has {expected}",
                map.len()
            )));
        }
        let g = self.geometry((w, h), side);
        let (sx, sy) = g.scale();
        let last = (side - 1) as f64;
        // Where image pixel `i` falls in the input: `None` if the crop keeps none of it, else
        // the two input pixels around its centre and the weight of the second.
        let locate = |i: u32, s: f64, offset: u64| -> Option<(usize, usize, f32)> {
            let start = i as f64 * s - offset as f64;
            if start + s <= 0.0 || start >= side as f64 {
                return None;
            }
            let f = (start + 0.5 * s - 0.5).clamp(0.0, last);
            let i0 = f.floor() as usize;
            Some((i0, (i0 + 1).min(side - 1), (f - i0 as f64) as f32))
        };
        let mut out = vec![0.0f32; h as usize * w as usize * channels]; // (h, w, C)
        for y in 0..h {
            let Some((y0, y1, ty)) = locate(y, sy, g.offset.1) else {
                continue;
            };
            for x in 0..w {
                let Some((x0, x1, tx)) = locate(x, sx, g.offset.0) else {
                    continue;
                };
                let at = |yy: usize, xx: usize, c: usize| map[(yy * side + xx) * channels + c];
                let px = (y as usize * w as usize + x as usize) * channels;
                for c in 0..channels {
                    let top = (1.0 - tx) * at(y0, x0, c) + tx * at(y0, x1, c);
                    let bottom = (1.0 - tx) * at(y1, x0, c) + tx * at(y1, x1, c);
                    out[px + c] = (1.0 - ty) * top + ty * bottom;
                }
            }
        }
        Ok(out)
    }

    /// The network input (side, side, 3) for an image of any size.
    pub fn prepare(&self, image: &RgbImage, side: usize) -> Vec<f32> {
        let resized = self.resize(image, side);
        let rgb: Vec<f32> = resized.as_raw().iter().map(|&v| v as f32).collect();
        self.normalize(&rgb)
    }
}

/// Where an image lands in the network's input: resized to `resized`, then the `side × side`
/// window at `offset` kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// The image's (width, height).
    pub image: (u32, u32),
    /// (width, height) after resizing: the image as the convention would resize it, never
    /// allocated (it can be far larger than the image).
    pub resized: (u64, u64),
    /// The kept window's top-left corner (x, y) in the resized image.
    pub offset: (u64, u64),
    pub side: usize,
}

impl Geometry {
    /// Resized pixels per image pixel, (x, y).
    fn scale(&self) -> (f64, f64) {
        let (w, h) = (self.image.0.max(1) as f64, self.image.1.max(1) as f64);
        (self.resized.0 as f64 / w, self.resized.1 as f64 / h)
    }
}

/// One axis of the resize: `src` image pixels become `dst`, of which `side` from `offset` on are
/// kept.
struct Axis {
    src: u32,
    dst: u64,
    offset: u64,
}

impl Axis {
    /// The filter taps of kept pixel `k`: the first source pixel, and the weights (summing to 1)
    /// in `weights`. The arithmetic is the `image` crate's `Triangle` resize, step for step.
    fn taps(&self, k: usize, weights: &mut Vec<f32>) -> usize {
        let ratio = self.src as f32 / self.dst as f32;
        let sratio = ratio.max(1.0);
        let support = sratio; // the triangle's support is 1
        let input = ((self.offset + k as u64) as f32 + 0.5) * ratio;
        let src = i64::from(self.src);
        let left = ((input - support).floor() as i64).clamp(0, src - 1);
        let right = ((input + support).ceil() as i64).clamp(left + 1, src);
        let centre = input - 0.5;
        weights.clear();
        weights
            .extend((left..right).map(|i| (1.0 - ((i as f32 - centre) / sratio).abs()).max(0.0)));
        let sum: f32 = weights.iter().sum();
        if sum > 0.0 {
            weights.iter_mut().for_each(|w| *w /= sum);
        } else {
            // Only where f32 cannot place the centre (offsets beyond 2²⁴): the nearest pixel.
            weights.iter_mut().for_each(|w| *w = 0.0);
            weights[0] = 1.0;
        }
        left as usize
    }
}

/// The kept `side × side` window of the resized image: each output row from the vertical taps
/// of its source rows, each column from the horizontal taps of those vertical sums, which are
/// computed once per row and kept only while a column's window needs them.
fn resample(image: &RgbImage, g: &Geometry) -> RgbImage {
    let side = g.side as u32;
    let (w, h) = image.dimensions();
    let mut out = RgbImage::new(side, side); // (side, side, 3)
    if w == 0 || h == 0 {
        return out;
    }
    let across = Axis {
        src: w,
        dst: g.resized.0,
        offset: g.offset.0,
    };
    let down = Axis {
        src: h,
        dst: g.resized.1,
        offset: g.offset.1,
    };
    let (mut wx, mut wy) = (Vec::new(), Vec::new());
    // Vertical sums of the columns `first..first + window.len()` for the current row.
    let mut window: VecDeque<[f32; 3]> = VecDeque::new();
    for ky in 0..side {
        let top = down.taps(ky as usize, &mut wy);
        let column = |x: usize| -> [f32; 3] {
            let mut t = [0.0f32; 3];
            for (i, w) in wy.iter().enumerate() {
                let p = image.get_pixel(x as u32, (top + i) as u32).0;
                for c in 0..3 {
                    t[c] += p[c] as f32 * w;
                }
            }
            t
        };
        window.clear();
        let mut first = 0;
        for kx in 0..side {
            let left = across.taps(kx as usize, &mut wx);
            while first < left && window.pop_front().is_some() {
                first += 1;
            }
            if window.is_empty() || left < first {
                window.clear();
                first = left;
            }
            while first + window.len() < left + wx.len() {
                window.push_back(column(first + window.len()));
            }
            let mut t = [0.0f32; 3];
            for (j, w) in wx.iter().enumerate() {
                let v = window[left - first + j];
                for c in 0..3 {
                    t[c] += v[c] * w;
                }
            }
            out.put_pixel(
                kx,
                ky,
                image::Rgb(t.map(|v| v.clamp(0.0, 255.0).round() as u8)),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_black_and_white_pixels() {
        for pre in [Preprocess::torchvision(), Preprocess::caffe()] {
            let (low, high) = pre.bounds();
            let black = pre.normalize(&[0.0; 3]);
            let white = pre.normalize(&[255.0; 3]);
            for c in 0..3 {
                assert!((black[c] - low[c]).abs() < 1e-6);
                assert!((white[c] - high[c]).abs() < 1e-4);
            }
        }
        let (low, high) = Preprocess::torchvision().bounds();
        assert!((low[0] - (-0.485 / 0.229)).abs() < 1e-6);
        assert!((high[2] - (0.594 / 0.225)).abs() < 1e-5);
    }

    #[test]
    fn caffe_swaps_to_bgr_and_subtracts_the_mean() {
        let x = Preprocess::caffe().normalize(&[10.0, 20.0, 30.0]);
        assert_eq!(x, vec![30.0 - 103.939, 20.0 - 116.779, 10.0 - 123.68]);
    }

    #[test]
    fn crop_keeps_the_centre() {
        // A 300×200 image whose right half is white: after resizing the shorter side to 256 and
        // cropping 224, the left and right edges keep their colours.
        let img = RgbImage::from_fn(300, 200, |x, _| {
            if x < 150 { [0, 0, 0] } else { [255, 255, 255] }.into()
        });
        let out = Preprocess::torchvision().resize(&img, 224);
        assert_eq!(out.dimensions(), (224, 224));
        assert_eq!(out.get_pixel(0, 100).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(223, 100).0, [255, 255, 255]);
    }

    /// The resize as the `image` crate makes it: the whole resized image, then the crop.
    fn resize_whole(pre: &Preprocess, image: &RgbImage, side: usize) -> RgbImage {
        let g = pre.geometry(image.dimensions(), side);
        let (rw, rh) = (g.resized.0 as u32, g.resized.1 as u32);
        let whole = image::imageops::resize(image, rw, rh, image::imageops::FilterType::Triangle);
        let (x0, y0) = (g.offset.0 as u32, g.offset.1 as u32);
        image::imageops::crop_imm(&whole, x0, y0, side as u32, side as u32).to_image()
    }

    #[test]
    fn windowed_resize_equals_the_whole_resize_cropped() {
        let mut seed = 0x5eed_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Shrinking, enlarging, one axis each way, very long sides, sizes already right.
        let sizes = [
            (37, 53),
            (300, 200),
            (13, 400),
            (500, 17),
            (1, 1),
            (2, 301),
            (64, 64),
            (73, 73),
            (20, 20),
        ];
        for (w, h) in sizes {
            let img = RgbImage::from_fn(w, h, |_, _| {
                let v = next();
                image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
            });
            for pre in [Preprocess::torchvision(), Preprocess::caffe()] {
                for side in [1, 17, 64] {
                    assert_eq!(
                        pre.resize(&img, side),
                        resize_whole(&pre, &img, side),
                        "{w}×{h} to {side} ({:?})",
                        pre.resize
                    );
                }
            }
        }
    }

    #[test]
    fn image_space_is_the_identity_without_resize_or_crop() {
        let side = 7;
        let map: Vec<f32> = (0..side * side * 3)
            .map(|i| i as f32 * 0.37 - 5.0)
            .collect();
        let back = Preprocess::caffe()
            .to_image_space(&map, 3, side, (7, 7))
            .unwrap();
        assert_eq!(back, map);
    }

    #[test]
    fn image_space_undoes_a_known_crop() {
        // 256×300 under the crop convention at 224: the shorter side is already 256, so the
        // resize is the identity and the crop starts at (16, 38).
        let side = 224;
        let map: Vec<f32> = (0..side * side).map(|i| i as f32).collect();
        let (w, h) = (256u32, 300u32);
        let pre = Preprocess::torchvision();
        let g = pre.geometry((w, h), side);
        assert_eq!((g.resized, g.offset), ((256, 300), (16, 38)));
        let back = pre.to_image_space(&map, 1, side, (w, h)).unwrap();
        assert_eq!(back.len(), (w * h) as usize);
        for y in 0..h as usize {
            for x in 0..w as usize {
                let inside = (16..240).contains(&x) && (38..262).contains(&y);
                let want = if inside {
                    map[(y - 38) * side + x - 16]
                } else {
                    0.0
                };
                assert_eq!(back[y * w as usize + x], want, "({x}, {y})");
            }
        }
    }

    #[test]
    fn image_space_is_bilinear() {
        // Enlarged twice (Direct, 4×4 → 8×8): each image pixel is the mean of two input pixels
        // per axis.
        let map: Vec<f32> = (0..64).map(|i| ((i * 37) % 11) as f32).collect();
        let back = Preprocess::caffe()
            .to_image_space(&map, 1, 8, (4, 4))
            .unwrap();
        for y in 0..4 {
            for x in 0..4 {
                let m = |yy: usize, xx: usize| map[yy * 8 + xx];
                let want = (m(2 * y, 2 * x)
                    + m(2 * y, 2 * x + 1)
                    + m(2 * y + 1, 2 * x)
                    + m(2 * y + 1, 2 * x + 1))
                    / 4.0;
                assert!((back[y * 4 + x] - want).abs() < 1e-5, "({x}, {y})");
            }
        }
        // A map linear in the input's x comes back linear in the image's x, through a resize
        // by 1.28 and a crop at (80, 16) (300×200 at 224 under the crop convention).
        let side = 224;
        let map: Vec<f32> = (0..side * side).map(|i| (i % side) as f32).collect();
        let back = Preprocess::torchvision()
            .to_image_space(&map, 1, side, (300, 200))
            .unwrap();
        for y in [20usize, 100, 180] {
            for x in 0..300usize {
                let at = (x as f64 + 0.5) * 1.28 - 80.0 - 0.5;
                let got = back[y * 300 + x] as f64;
                if (x + 1) as f64 * 1.28 <= 80.0 || x as f64 * 1.28 >= 80.0 + side as f64 {
                    assert_eq!(got, 0.0, "({x}, {y}) is outside the crop");
                } else {
                    let want = at.clamp(0.0, (side - 1) as f64);
                    assert!((got - want).abs() < 1e-3, "({x}, {y}): {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn image_space_shapes_and_bad_maps() {
        for pre in [Preprocess::torchvision(), Preprocess::caffe()] {
            for (w, h) in [(31u32, 17u32), (17, 31), (1, 90), (500, 3)] {
                for channels in [1, 3] {
                    let map = vec![1.0; 17 * 17 * channels];
                    let back = pre.to_image_space(&map, channels, 17, (w, h)).unwrap();
                    assert_eq!(back.len(), (w * h) as usize * channels);
                    // The crop keeps the centre: the middle pixel is inside, even where the
                    // crop is thinner than one of the image's pixels.
                    let mid = ((h / 2) * w + w / 2) as usize * channels;
                    assert_eq!(back[mid], 1.0, "{w}×{h}");
                }
            }
            assert!(pre.to_image_space(&[0.0; 10], 1, 17, (5, 5)).is_err());
            assert!(pre.to_image_space(&[], 1, 0, (5, 5)).is_err());
        }
    }

    #[test]
    fn rectangles_follow_the_resize() {
        let direct = Preprocess::caffe();
        assert_eq!(
            direct.map_rect((448, 112), 224, [0, 0, 448, 112]),
            Some([0, 0, 224, 224])
        );
        assert_eq!(
            direct.map_rect((448, 112), 224, [100, 10, 200, 20]),
            Some([50, 20, 100, 40])
        );
        // 300×200 → 384×256 → crop 224 at (80, 16).
        let crop = Preprocess::torchvision();
        assert_eq!(
            crop.map_rect((300, 200), 224, [150, 100, 300, 200]),
            Some([112, 112, 224, 224])
        );
        assert_eq!(crop.map_rect((300, 200), 224, [0, 0, 40, 200]), None);
    }

    #[test]
    fn metadata_round_trips() {
        let custom = Preprocess {
            channels: Channels::Rgb,
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            resize: Resize::Direct,
        };
        for pre in [Preprocess::torchvision(), Preprocess::caffe(), custom] {
            assert_eq!(Preprocess::parse(&pre.to_metadata()).unwrap(), pre);
        }
        assert!(Preprocess::parse("imagenet").is_err());
        assert!(
            Preprocess::parse(
                r#"{"channels":"rgb","scale":1,"mean":[0,0,0],"std":[0,1,1],"resize":"direct"}"#
            )
            .is_err()
        );
    }
}
