//! JSON Lines manifests: one scene per line,
//! `{"image": "path.png", "label": 3, "boxes": [{"label": 3, "x0": 10, "y0": 12, "x1": 80, "y1": 90}]}`,
//! image paths relative to the manifest's folder.

use std::path::Path;

use serde::Deserialize;

use super::{Dataset, LabelBox, Sample};
use crate::error::{Error, Result};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    image: String,
    label: usize,
    boxes: Vec<LabelBox>,
}

/// Reads a manifest. Lines that do not parse, name a missing image or hold an empty box are
/// skipped and reported as `file:line: reason`; blank lines are ignored.
pub fn read_manifest(path: &Path) -> Result<Dataset> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut dataset = Dataset::default();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let source = format!("{}:{}", path.display(), i + 1);
        let parsed: Line = match serde_json::from_str(raw) {
            Ok(line) => line,
            Err(e) => {
                dataset
                    .skipped
                    .push(format!("{source}: not a scene line ({e})"));
                continue;
            }
        };
        let image = dir.join(&parsed.image);
        if !image.is_file() {
            dataset
                .skipped
                .push(format!("{source}: image {} not found", image.display()));
            continue;
        }
        if let Some(b) = parsed.boxes.iter().find(|b| b.x1 <= b.x0 || b.y1 <= b.y0) {
            dataset.skipped.push(format!(
                "{source}: empty box ({}, {})–({}, {})",
                b.x0, b.y0, b.x1, b.y1
            ));
            continue;
        }
        dataset.samples.push(Sample {
            image,
            label: parsed.label,
            boxes: parsed.boxes,
            source,
        });
    }
    Ok(dataset)
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
    }
}
