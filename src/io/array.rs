//! Relevance maps as arrays for NumPy (README "Arrays"): one map in the channel order and pixel
//! space asked for, an `.npz` of every map of an image with what each is, and a run's maps stacked
//! into one memory-mappable `.npy` of shape (images, heads, C, H, W) with a JSON index.
//!
//! Arrays hold RGB channels by default whatever the model's order (the demo model is BGR), so
//! that channel 0 is red for every model.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::npz::{Array, header, write_npz};
use crate::error::{Error, Result};
use crate::model::{Channels, Preprocess};

/// The channel order of arrays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ArrayChannels {
    /// Red, green, blue, whatever the model's order.
    #[default]
    Rgb,
    /// The model's own order (BGR for caffe-style models).
    Model,
}

/// The pixels of a map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MapSpace {
    /// The network's input pixels (`side × side`, after resizing and cropping).
    #[default]
    Input,
    /// The original image's pixels: the resize and the crop undone (see
    /// [`Preprocess::to_image_space`]); pixels the crop cut off hold 0.
    Image,
}

macro_rules! named {
    ($ty:ty, $what:literal, $($variant:path => $name:literal),+) => {
        impl $ty {
            pub fn name(self) -> &'static str {
                match self { $($variant => $name),+ }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($name => Ok($variant),)+
                    _ => Err(format!(concat!("unknown ", $what, " `{}` (expected {})"), s,
                        [$($name),+].join(" or "))),
                }
            }
        }
    };
}
named!(ArrayChannels, "channel order", ArrayChannels::Rgb => "rgb", ArrayChannels::Model => "model");
named!(MapSpace, "map space", MapSpace::Input => "input", MapSpace::Image => "image");

/// How maps become arrays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArrayOptions {
    pub channels: ArrayChannels,
    pub space: MapSpace,
}

impl ArrayOptions {
    /// The channel order the arrays of a model with `model` order hold.
    pub fn channel_order(&self, model: Channels) -> Channels {
        match self.channels {
            ArrayChannels::Rgb => Channels::Rgb,
            ArrayChannels::Model => model,
        }
    }

    /// One map `(C, side, side)` in the model's channel order, as an array: its shape
    /// `(C, H, W)` and values. `image_size` is the original image's (width, height).
    pub fn map(
        &self,
        relevance: &[f32],
        channels: usize,
        side: usize,
        pre: &Preprocess,
        image_size: (u32, u32),
    ) -> Result<(Vec<u64>, Vec<f32>)> {
        let plane = side * side;
        if relevance.len() != channels * plane {
            return Err(Error::Request(format!(
                "map of {} values; a ({channels}, {side}, {side}) map has {}",
                relevance.len(),
                channels * plane
            )));
        }
        let reverse = channels == 3 && self.channel_order(pre.channels) != pre.channels;
        let source = |c: usize| if reverse { channels - 1 - c } else { c };
        let ordered: Vec<f32> = (0..channels)
            .flat_map(|c| relevance[source(c) * plane..][..plane].iter().copied())
            .collect();
        match self.space {
            MapSpace::Input => Ok((vec![channels as u64, side as u64, side as u64], ordered)),
            MapSpace::Image => {
                let hwc: Vec<f32> = (0..plane)
                    .flat_map(|p| (0..channels).map(move |c| (c, p)))
                    .map(|(c, p)| ordered[c * plane + p])
                    .collect();
                let back = pre.to_image_space(&hwc, channels, side, image_size)?;
                let (w, h) = (image_size.0 as usize, image_size.1 as usize);
                let chw = (0..channels)
                    .flat_map(|c| (0..w * h).map(move |p| (c, p)))
                    .map(|(c, p)| back[p * channels + c])
                    .collect();
                Ok((vec![channels as u64, h as u64, w as u64], chw))
            }
        }
    }
}

/// What one map of an image is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Head {
    /// `lrp`, `clrp`, `sglrp`, …
    pub method: String,
    /// The target as asked: `top1`, `class5`, …
    pub target: String,
    /// The class it resolved to, its name and probability.
    pub class: usize,
    pub name: String,
    pub probability: f32,
}

/// Every map of one image as `.npz`: `relevance` (heads, C, H, W) f32 and per head `method`,
/// `target`, `name` (strings), `class` (int64) and `probability` (float32); `channels` (`rgb` or
/// `bgr`), `map_space` (`input` or `image`), `shape` (the shape of `relevance`) and
/// `image_size` (the original image's width and height).
pub fn write_image_npz(
    path: &Path,
    heads: &[Head],
    maps: &[Vec<f32>],
    map_shape: &[u64],
    channels: Channels,
    space: MapSpace,
    image_size: (u32, u32),
) -> Result<()> {
    let mut shape = vec![heads.len() as u64];
    shape.extend_from_slice(map_shape);
    let pick = |f: fn(&Head) -> &str| Array::strings(&heads.iter().map(f).collect::<Vec<_>>());
    let arrays = [
        ("relevance", Array::F32(shape.clone(), maps.concat())),
        ("method", pick(|h| &h.method)),
        ("target", pick(|h| &h.target)),
        ("name", pick(|h| &h.name)),
        (
            "class",
            Array::I64(
                vec![heads.len() as u64],
                heads.iter().map(|h| h.class as i64).collect(),
            ),
        ),
        (
            "probability",
            Array::F32(
                vec![heads.len() as u64],
                heads.iter().map(|h| h.probability).collect(),
            ),
        ),
        ("channels", Array::string(channel_name(channels))),
        ("map_space", Array::string(space.name())),
        (
            "shape",
            Array::I64(
                vec![shape.len() as u64],
                shape.iter().map(|&d| d as i64).collect(),
            ),
        ),
        (
            "image_size",
            Array::I64(vec![2], vec![image_size.0 as i64, image_size.1 as i64]),
        ),
    ];
    write_npz(path, &arrays)
}

/// `rgb` or `bgr`.
pub fn channel_name(channels: Channels) -> &'static str {
    match channels {
        Channels::Rgb => "rgb",
        Channels::Bgr => "bgr",
    }
}

/// A run's maps in one `.npy` of shape (rows, heads, C, H, W), f32, written row by row as images
/// are done (rows of images that failed stay 0) into a temporary file that [`Stack::finish`]
/// renames into place.
pub struct Stack {
    file: Mutex<File>,
    tmp: PathBuf,
    path: PathBuf,
    header_len: u64,
    row_values: usize,
    shape: Vec<u64>,
}

impl Stack {
    /// A zero-filled stack of `rows` rows of `row_shape` each.
    pub fn create(path: &Path, rows: usize, row_shape: &[u64]) -> Result<Stack> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut shape = vec![rows as u64];
        shape.extend_from_slice(row_shape);
        let row_values = row_shape.iter().product::<u64>() as usize;
        let head = header("<f4", &shape);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let mut file = File::create(&tmp).map_err(io)?;
        let total = head.len() as u64 + (rows * row_values * 4) as u64;
        file.write_all(&head)
            .and_then(|_| file.set_len(total))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io(e)
            })?;
        Ok(Stack {
            file: Mutex::new(file),
            tmp,
            path: path.to_owned(),
            header_len: head.len() as u64,
            row_values,
            shape,
        })
    }

    /// The array's shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// Writes row `row` (all heads of one image).
    pub fn write_row(&self, row: usize, values: &[f32]) -> Result<()> {
        if values.len() != self.row_values || row as u64 >= self.shape[0] {
            return Err(Error::Request(format!(
                "{}: row {row} of {} values; the stack has {} rows of {}",
                self.path.display(),
                values.len(),
                self.shape[0],
                self.row_values
            )));
        }
        let offset = self.header_len + (row * self.row_values * 4) as u64;
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.write_all(bytemuck::cast_slice(values)))
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Flushes the array and moves it into place.
    pub fn finish(self) -> Result<()> {
        let file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let result = file
            .sync_all()
            .and_then(|_| std::fs::rename(&self.tmp, &self.path));
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        drop(file);
        result.map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // After `finish` the temporary file is gone; otherwise the run did not finish it.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// The index of a stack: what its axes are. Paths are relative to the index file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StackIndex {
    /// The `.npy` file.
    pub array: String,
    pub shape: Vec<u64>,
    pub dtype: &'static str,
    /// `rgb` or `bgr`: the order of axis 2.
    pub channels: &'static str,
    pub map_space: &'static str,
    /// Axis 1: method and target of each head.
    pub heads: Vec<StackHead>,
    /// Axis 0: one per input, in the run's order.
    pub images: Vec<StackImage>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StackHead {
    pub method: String,
    pub target: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StackImage {
    pub row: usize,
    pub input: String,
    /// `ok`, or `error` (its row is 0).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Per head: the class explained and its probability.
    pub classes: Vec<usize>,
    pub probabilities: Vec<f32>,
}

impl StackIndex {
    /// Writes the index as pretty JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("plain records serialise") + "\n";
        super::write_atomic(path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_arrays_reverse_a_bgr_model_and_keep_an_rgb_one() {
        let side = 2;
        let map: Vec<f32> = (0..12).map(|v| v as f32).collect(); // planes 0‥3, 4‥7, 8‥11
        let caffe = Preprocess::caffe();
        let rgb = ArrayOptions::default();
        let (shape, values) = rgb.map(&map, 3, side, &caffe, (2, 2)).unwrap();
        assert_eq!(shape, [3, 2, 2]);
        assert_eq!(&values[..4], &map[8..]);
        assert_eq!(&values[8..], &map[..4]);
        let model = ArrayOptions {
            channels: ArrayChannels::Model,
            ..rgb
        };
        assert_eq!(model.map(&map, 3, side, &caffe, (2, 2)).unwrap().1, map);
        let tv = Preprocess::torchvision();
        assert_eq!(rgb.map(&map, 3, side, &tv, (2, 2)).unwrap().1, map);
        assert!(rgb.map(&map[1..], 3, side, &tv, (2, 2)).is_err());
    }

    #[test]
    fn image_space_maps_have_the_image_shape() {
        let caffe = Preprocess::caffe(); // resizes directly, no crop
        let image = ArrayOptions {
            space: MapSpace::Image,
            ..ArrayOptions::default()
        };
        let map = vec![1.0f32; 3 * 4 * 4];
        let (shape, values) = image.map(&map, 3, 4, &caffe, (6, 3)).unwrap();
        assert_eq!(shape, [3, 3, 6]);
        assert!(values.iter().all(|&v| (v - 1.0).abs() < 1e-6));
    }

    #[test]
    fn stacks_fill_rows_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maps.npy");
        let stack = Stack::create(&path, 3, &[2, 1]).unwrap();
        stack.write_row(2, &[5.0, 6.0]).unwrap();
        stack.write_row(0, &[1.0, 2.0]).unwrap();
        assert!(stack.write_row(3, &[1.0, 2.0]).is_err());
        assert!(stack.write_row(1, &[1.0]).is_err());
        stack.finish().unwrap();
        let (shape, values) = super::super::npy::read_npy(&path).unwrap();
        assert_eq!(shape, [3, 2, 1]);
        assert_eq!(values, [1.0, 2.0, 0.0, 0.0, 5.0, 6.0]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let abandoned = Stack::create(&dir.path().join("b.npy"), 1, &[1]).unwrap();
        drop(abandoned);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
