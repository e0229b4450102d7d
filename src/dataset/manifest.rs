//! JSON Lines manifests: one scene per line,
//! `{"image": "path.png", "label": 3, "boxes": [{"label": 3, "x0": 10, "y0": 12, "x1": 80, "y1": 90}]}`,
//! image paths relative to the manifest's folder.
//!
//! The file is read line by line, each at most [`MAX_LINE`] bytes: a line that is not UTF-8, too
//! long or not a scene fails alone. Fields sglrp does not use are kept in [`Sample::extra`] (a
//! box's are only named in the warning); messages quote at most a short excerpt of a line.

use std::io::BufReader;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Builder, Dataset, LabelBox, Sample};
use crate::error::{Error, Result};
use crate::io::text::{EXCERPT_CHARS, excerpt, lines, open_regular};

/// The longest manifest line, in bytes (a scene with some ten thousand boxes).
pub const MAX_LINE: usize = 1 << 20;

#[derive(Deserialize)]
struct Line {
    image: String,
    label: usize,
    boxes: Vec<RawBox>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct RawBox {
    label: usize,
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Reads a manifest. Lines that cannot be used (not UTF-8, too long, not a scene, a missing image,
/// an empty box) are skipped and reported as `file:line: reason`; blank lines are ignored.
pub fn read_manifest(path: &Path) -> Result<Dataset> {
    let file = open_regular(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = Builder::new(path.display().to_string());
    for line in lines(BufReader::new(file), MAX_LINE) {
        let line = line.map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let source = format!("{}:{}", path.display(), line.number);
        let parsed = match line.text {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => parse_line(&text, dir, source.clone()),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok((sample, unknown)) => {
                builder.unknown(unknown);
                builder.push(sample);
            }
            Err(reason) => builder.skip(format!("{source}: {reason}")),
        }
    }
    Ok(builder.finish())
}

/// One scene line: the sample and the names of the fields sglrp does not use.
fn parse_line(text: &str, dir: &Path, source: String) -> Result<(Sample, Vec<String>), String> {
    let line: Line = serde_json::from_str(text).map_err(|e| {
        format!(
            "not a scene line ({}); expected {{\"image\", \"label\", \"boxes\": [{{label, x0, y0, \
             x1, y1}}]}}",
            excerpt(&e.to_string(), 2 * EXCERPT_CHARS)
        )
    })?;
    let image = dir.join(&line.image);
    let shown = || excerpt(&image.display().to_string(), EXCERPT_CHARS);
    match std::fs::metadata(&image) {
        Err(_) => return Err(format!("image {} not found", shown())),
        Ok(meta) if !meta.is_file() => {
            return Err(format!("image {} is not a regular file", shown()));
        }
        Ok(_) => {}
    }
    let mut unknown: Vec<String> = line.extra.keys().cloned().collect();
    let mut boxes = Vec::with_capacity(line.boxes.len());
    for b in line.boxes {
        if b.x1 <= b.x0 || b.y1 <= b.y0 {
            return Err(format!(
                "empty box ({}, {})–({}, {})",
                b.x0, b.y0, b.x1, b.y1
            ));
        }
        unknown.extend(b.extra.keys().map(|k| format!("boxes[].{k}")));
        boxes.push(LabelBox {
            label: b.label,
            x0: b.x0,
            y0: b.y0,
            x1: b.x1,
            y1: b.y1,
        });
    }
    let sample = Sample {
        image,
        label: line.label,
        boxes,
        source,
        extra: line.extra,
    };
    Ok((sample, unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_skipped_with_their_line_number() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"png").unwrap();
        let manifest = dir.path().join("manifest.jsonl");
        std::fs::write(
            &manifest,
            [
                r#"{"image": "a.png", "label": 2, "boxes": [{"label": 2, "x0": 1, "y0": 2, "x1": 30, "y1": 40}]}"#,
                "",
                r#"{"image": "a.png", "label": 2"#,
                r#"{"image": "missing.png", "label": 1, "boxes": []}"#,
                r#"{"image": "a.png", "label": 1, "boxes": [{"label": 1, "x0": 5, "y0": 5, "x1": 5, "y1": 9}]}"#,
            ]
            .join("\n"),
        )
        .unwrap();
        let data = read_manifest(&manifest).unwrap();
        assert_eq!(data.samples.len(), 1);
        assert_eq!(data.samples[0].boxes[0].area(), 29 * 38);
        assert_eq!(data.skipped.len(), 3, "{:?}", data.skipped);
        assert!(data.skipped[0].contains("manifest.jsonl:3"));
        assert!(data.skipped[1].contains("missing.png"));
        assert!(data.skipped[2].contains("empty box"));
        assert!(data.warnings.is_empty(), "{:?}", data.warnings);
    }
}
