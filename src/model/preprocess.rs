//! Pre-processing (SPEC §2): from an RGB image to the network's input, and the z^B bounds that
//! follow from it.

use image::{RgbImage, imageops::FilterType};
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

    /// Resizes (and crops) an image to `side × side` as the convention says, bilinearly.
    pub fn resize(&self, image: &RgbImage, side: usize) -> RgbImage {
        let side = side as u32;
        let (w, h) = image.dimensions();
        match self.resize {
            Resize::Direct if (w, h) == (side, side) => image.clone(),
            Resize::Direct => image::imageops::resize(image, side, side, FilterType::Triangle),
            Resize::Crop => {
                let short = (side as f64 * 256.0 / 224.0).round() as u32;
                let (rw, rh) = if w <= h {
                    (
                        short,
                        ((h as f64 * short as f64 / w as f64).round() as u32).max(short),
                    )
                } else {
                    (
                        ((w as f64 * short as f64 / h as f64).round() as u32).max(short),
                        short,
                    )
                };
                let resized = image::imageops::resize(image, rw, rh, FilterType::Triangle);
                let x0 = ((rw - side) as f64 / 2.0).round() as u32;
                let y0 = ((rh - side) as f64 / 2.0).round() as u32;
                image::imageops::crop_imm(&resized, x0, y0, side, side).to_image()
            }
        }
    }

    /// Where the rectangle `[x0, x1) × [y0, y1)` of a `w × h` image lands in the `side × side`
    /// input that [`Preprocess::resize`] makes, clipped to it; `None` if it falls outside.
    pub fn map_rect(&self, (w, h): (u32, u32), side: usize, rect: [u32; 4]) -> Option<[usize; 4]> {
        let side_f = side as f64;
        let (sx, sy, ox, oy) = match self.resize {
            Resize::Direct => (side_f / w as f64, side_f / h as f64, 0.0, 0.0),
            Resize::Crop => {
                let short = (side_f * 256.0 / 224.0).round();
                let scale = short / w.min(h) as f64;
                let (rw, rh) = (
                    (w as f64 * scale).round().max(short),
                    (h as f64 * scale).round().max(short),
                );
                let (sx, sy) = (rw / w as f64, rh / h as f64);
                (
                    sx,
                    sy,
                    ((rw - side_f) / 2.0).round(),
                    ((rh - side_f) / 2.0).round(),
                )
            }
        };
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

    /// The network input (side, side, 3) for an image of any size.
    pub fn prepare(&self, image: &RgbImage, side: usize) -> Vec<f32> {
        let resized = self.resize(image, side);
        let rgb: Vec<f32> = resized.as_raw().iter().map(|&v| v as f32).collect();
        self.normalize(&rgb)
    }
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
