//! Datasets with ground-truth boxes: sglrp's JSON Lines scene manifests and Pascal VOC XML box
//! files (the format of ImageNet's validation boxes). A line or file that cannot be used is
//! reported with its location and skipped; the rest of the dataset loads. What is odd but usable
//! (fields sglrp does not know, repeated samples, samples without a box of their own label) is
//! said once per dataset in [`Dataset::warnings`].

mod manifest;
mod voc;

pub use manifest::{MAX_LINE, read_manifest};
pub use voc::{MAX_SYNSETS_BYTES, MAX_XML_BYTES, MAX_XML_NODES, read_synsets, read_voc};

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::io::text::{EXCERPT_CHARS, excerpt};

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
    /// A manifest line's fields that sglrp does not use (a dataset's own columns, such as
    /// `label_name`), kept for the caller.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Sample {
    /// A key of what the sample says (image, label, boxes, extra fields), the same for two lines
    /// with the same content wherever they are: 16 hex digits of a 64-bit FNV-1a hash of its
    /// canonical JSON (keys sorted). Stable across runs, builds and platforms.
    pub fn content_key(&self) -> String {
        let canonical = serde_json::json!({
            "image": self.image.to_string_lossy(),
            "label": self.label,
            "boxes": self.boxes,
            "extra": self.extra,
        });
        format!("{:016x}", fnv1a(canonical.to_string().as_bytes()))
    }

    /// Whether some box has the sample's own label: without one, the pointing game has no hits
    /// and scores 0 whatever the map.
    pub fn has_label_box(&self) -> bool {
        self.boxes.iter().any(|b| b.label == self.label)
    }

    /// Why the sample does not fit a model with `classes` classes: its label or a box's label is
    /// not one of them.
    pub fn unknown_class(&self, classes: usize) -> Option<String> {
        let known = |label: usize| label < classes;
        let range = match classes {
            0 => "none".to_string(),
            n => format!("0‥{}", n - 1),
        };
        if !known(self.label) {
            return Some(format!(
                "{}: label {} is not a class of the model ({classes} classes: {range})",
                self.source, self.label
            ));
        }
        self.boxes.iter().find(|b| !known(b.label)).map(|b| {
            format!(
                "{}: box label {} is not a class of the model ({classes} classes: {range})",
                self.source, b.label
            )
        })
    }
}

/// The samples that loaded, one line per entry that did not, and what was odd but usable.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub samples: Vec<Sample>,
    pub skipped: Vec<String>,
    /// One line each; at most one per kind of oddity for the whole dataset.
    pub warnings: Vec<String>,
}

impl Dataset {
    /// Moves the samples whose label or box labels a model with `classes` classes does not have
    /// to [`Dataset::skipped`], each with its location.
    pub fn check_classes(&mut self, classes: usize) {
        let (keep, refused): (Vec<Sample>, Vec<Sample>) = std::mem::take(&mut self.samples)
            .into_iter()
            .partition(|s| s.unknown_class(classes).is_none());
        self.samples = keep;
        self.skipped
            .extend(refused.iter().filter_map(|s| s.unknown_class(classes)));
    }
}

/// Builds a [`Dataset`] sample by sample: drops repeats (same [`Sample::content_key`]) and
/// gathers the once-per-dataset warnings.
struct Builder {
    /// The file or folder the dataset comes from, for the warnings.
    origin: String,
    dataset: Dataset,
    seen: HashMap<String, String>,
    /// (count, first repeat and what it repeats).
    repeats: (usize, Option<(String, String)>),
    without_label_box: (usize, Option<String>),
    unknown_fields: BTreeSet<String>,
}

/// At most this many unknown field names are listed in the warning.
const LISTED_FIELDS: usize = 10;

impl Builder {
    fn new(origin: String) -> Self {
        Builder {
            origin,
            dataset: Dataset::default(),
            seen: HashMap::new(),
            repeats: (0, None),
            without_label_box: (0, None),
            unknown_fields: BTreeSet::new(),
        }
    }

    fn skip(&mut self, reason: String) {
        self.dataset.skipped.push(reason);
    }

    /// Notes field names that sglrp does not use (`boxes[].x` for a box's).
    fn unknown(&mut self, names: impl IntoIterator<Item = String>) {
        for name in names {
            if self.unknown_fields.len() > LISTED_FIELDS {
                break;
            }
            self.unknown_fields.insert(excerpt(&name, EXCERPT_CHARS));
        }
    }

    fn push(&mut self, sample: Sample) {
        let key = sample.content_key();
        if let Some(first) = self.seen.get(&key) {
            self.repeats.0 += 1;
            self.repeats
                .1
                .get_or_insert_with(|| (sample.source.clone(), first.clone()));
            return;
        }
        if !sample.has_label_box() {
            self.without_label_box.0 += 1;
            self.without_label_box
                .1
                .get_or_insert_with(|| sample.source.clone());
        }
        self.seen.insert(key, sample.source.clone());
        self.dataset.samples.push(sample);
    }

    fn finish(mut self) -> Dataset {
        let origin = &self.origin;
        if !self.unknown_fields.is_empty() {
            let mut names: Vec<&str> = self.unknown_fields.iter().map(String::as_str).collect();
            let more = if names.len() > LISTED_FIELDS {
                names.truncate(LISTED_FIELDS);
                ", …"
            } else {
                ""
            };
            self.dataset.warnings.push(format!(
                "{origin}: fields sglrp does not use, kept aside: {}{more}",
                names.join(", ")
            ));
        }
        if let (n, Some((at, first))) = &self.repeats {
            self.dataset.warnings.push(format!(
                "{origin}: {n} sample(s) repeat an earlier one and are used once (first: {at} \
                 repeats {first})"
            ));
        }
        if let (n, Some(first)) = &self.without_label_box {
            self.dataset.warnings.push(format!(
                "{origin}: {n} sample(s) have no box of their own label, so their pointing game \
                 has no hits (first: {first})"
            ));
        }
        self.dataset
    }
}

/// 64-bit FNV-1a: a hash that stays the same across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
