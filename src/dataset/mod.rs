//! Datasets with ground-truth boxes: sglrp's JSON Lines scene manifests and Pascal VOC XML box
//! files (the format of ImageNet's validation boxes). A line or file that cannot be used is
//! reported with its location and skipped; the rest of the dataset loads.

mod manifest;
mod voc;

pub use manifest::read_manifest;
pub use voc::{read_synsets, read_voc};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A labelled box in the image's pixel coordinates; `x1`, `y1` are exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelBox {
    pub label: usize,
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl LabelBox {
    pub fn area(&self) -> u64 {
        self.x1.saturating_sub(self.x0) as u64 * self.y1.saturating_sub(self.y0) as u64
    }
}

/// One image of a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub image: PathBuf,
    /// The ground-truth class: the scene's primary item, or the largest box's class.
    pub label: usize,
    pub boxes: Vec<LabelBox>,
    /// Where the sample was described, for messages: `manifest.jsonl:12`, `n0001.xml`.
    pub source: String,
}

/// The samples that loaded, and one line per entry that did not.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub samples: Vec<Sample>,
    pub skipped: Vec<String>,
}
