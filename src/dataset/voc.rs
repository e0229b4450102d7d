//! Pascal VOC XML box files, as ImageNet ships its validation boxes: one `.xml` per image with
//! `<filename>`, `<size>` and `<object><name>synset</name><bndbox>xmin…</bndbox></object>`.
//! Coordinates are VOC's: 1-based and inclusive, so `x0 = xmin − 1`, `x1 = xmax`.

use std::collections::HashMap;
use std::path::Path;

use super::{Dataset, LabelBox, Sample};
use crate::error::{Error, Result};

/// A synset-to-index map: one synset per line, the line number (from 0) is the class index;
/// anything after the first word (`n01440764 tench, Tinca tinca`) is ignored.
pub fn read_synsets(path: &Path) -> Result<HashMap<String, usize>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .enumerate()
        .map(|(i, synset)| (synset.to_string(), i))
        .collect())
}

/// Reads every `*.xml` in `boxes_dir`; images are looked up in `images_dir` by the file's
/// `<filename>` (with the extension it has there, or `.JPEG`, `.jpg`, `.png` added). The label is
/// the class of the largest box.
pub fn read_voc(
    boxes_dir: &Path,
    images_dir: &Path,
    synsets: &HashMap<String, usize>,
) -> Result<Dataset> {
    let entries = std::fs::read_dir(boxes_dir).map_err(|source| Error::Io {
        path: boxes_dir.to_owned(),
        source,
    })?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")))
        .collect();
    files.sort();
    let mut dataset = Dataset::default();
    for file in files {
        match read_one(&file, images_dir, synsets) {
            Ok(sample) => dataset.samples.push(sample),
            Err(reason) => dataset
                .skipped
                .push(format!("{}: {reason}", file.display())),
        }
    }
    Ok(dataset)
}

fn read_one(
    file: &Path,
    images_dir: &Path,
    synsets: &HashMap<String, usize>,
) -> Result<Sample, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let doc = roxmltree::Document::parse(&text).map_err(|e| format!("not XML ({e})"))?;
    let root = doc.root_element();
    let child_text = |node: roxmltree::Node, name: &str| -> Option<String> {
        node.children()
            .find(|c| c.has_tag_name(name))
            .and_then(|c| c.text())
            .map(|t| t.trim().to_string())
    };
    let filename = child_text(root, "filename").ok_or("no <filename>")?;
    let image = [String::new(), ".JPEG".into(), ".jpg".into(), ".png".into()]
        .iter()
        .map(|ext| images_dir.join(format!("{filename}{ext}")))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("image {filename} not found in {}", images_dir.display()))?;
    let mut boxes = Vec::new();
    for object in root.children().filter(|c| c.has_tag_name("object")) {
        let name = child_text(object, "name").ok_or("an <object> without <name>")?;
        let label = *synsets
            .get(&name)
            .ok_or_else(|| format!("synset {name} is not in the synset map"))?;
        let bndbox = object
            .children()
            .find(|c| c.has_tag_name("bndbox"))
            .ok_or("an <object> without <bndbox>")?;
        let coord = |tag: &str| -> Result<u32, String> {
            child_text(bndbox, tag)
                .and_then(|t| t.parse::<f64>().ok())
                .filter(|v| *v >= 0.0)
                .map(|v| v.round() as u32)
                .ok_or_else(|| format!("<{tag}> missing or not a coordinate"))
        };
        let b = LabelBox {
            label,
            x0: coord("xmin")?.saturating_sub(1),
            y0: coord("ymin")?.saturating_sub(1),
            x1: coord("xmax")?,
            y1: coord("ymax")?,
        };
        if b.x1 <= b.x0 || b.y1 <= b.y0 {
            return Err(format!("empty box for {name}"));
        }
        boxes.push(b);
    }
    let label = boxes
        .iter()
        .max_by_key(|b| b.area())
        .map(|b| b.label)
        .ok_or("no <object>")?;
    Ok(Sample {
        image,
        label,
        boxes,
        source: file.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_imagenet_style_boxes() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        let boxes = dir.path().join("boxes");
        std::fs::create_dir_all(&images).unwrap();
        std::fs::create_dir_all(&boxes).unwrap();
        std::fs::write(images.join("val_1.JPEG"), b"jpeg").unwrap();
        std::fs::write(
            boxes.join("val_1.xml"),
            "<annotation><filename>val_1</filename><size><width>500</width><height>375</height></size>\
             <object><name>n02</name><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>40</xmax><ymax>60</ymax></bndbox></object>\
             <object><name>n01</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>200</xmax><ymax>300</ymax></bndbox></object>\
             </annotation>",
        )
        .unwrap();
        std::fs::write(
            boxes.join("val_2.xml"),
            "<annotation><filename>val_2</filename></annotation>",
        )
        .unwrap();
        std::fs::write(
            boxes.join("val_3.xml"),
            "<annotation><filename>val_1</filename><object><name>n09</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>",
        )
        .unwrap();
        let synsets_file = dir.path().join("synsets.txt");
        std::fs::write(&synsets_file, "n01 tench, Tinca tinca\nn02 goldfish\n").unwrap();
        let synsets = read_synsets(&synsets_file).unwrap();
        let data = read_voc(&boxes, &images, &synsets).unwrap();
        assert_eq!(data.samples.len(), 1);
        let s = &data.samples[0];
        assert_eq!(s.label, 0, "the largest box's class");
        assert_eq!(
            s.boxes[0],
            LabelBox {
                label: 1,
                x0: 10,
                y0: 20,
                x1: 40,
                y1: 60
            }
        );
        assert_eq!(data.skipped.len(), 2, "{:?}", data.skipped);
        assert!(data.skipped[0].contains("val_2.xml") && data.skipped[0].contains("not found"));
        assert!(data.skipped[1].contains("n09"));
    }
}
