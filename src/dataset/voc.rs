//! Pascal VOC XML box files, as ImageNet ships its validation boxes: one `.xml` per image with
//! `<filename>`, `<size>` and `<object><name>synset</name><bndbox>xmin…</bndbox></object>`.
//! Coordinates are VOC's: 1-based and inclusive, so `x0 = xmin − 1`, `x1 = xmax`.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::{Builder, Dataset, LabelBox, Sample};
use crate::error::{Error, Result};
use crate::io::text::{EXCERPT_CHARS, class_lines, excerpt, line_of, read_bounded};

/// The largest box file read (ImageNet's are below 5 kB).
pub const MAX_XML_BYTES: u64 = 1 << 20;

/// The most XML nodes (elements, texts, attributes) in a box file.
pub const MAX_XML_NODES: u32 = 100_000;

/// The largest synset file read (ImageNet-21k's is 0.5 MB).
pub const MAX_SYNSETS_BYTES: u64 = 16 << 20;

/// The longest line of a synset file, in bytes.
const MAX_SYNSET_LINE: usize = 4096;

/// A synset-to-index map: one synset per line, the line number (from 0) is the class index;
/// anything after the first word (`n01440764 tench, Tinca tinca`) is ignored. Empty lines at the
/// end are accepted; an empty line before the last synset (it would shift every class after it),
/// a synset given twice, and a line that is not UTF-8 are errors naming the line.
pub fn read_synsets(path: &Path) -> Result<HashMap<String, usize>> {
    let bytes = read_bounded(path, MAX_SYNSETS_BYTES, "synset file")?;
    let mut map = HashMap::new();
    let mut line_of_class = Vec::new();
    for (text, line) in class_lines(path, &bytes, MAX_SYNSET_LINE, "synset")? {
        // Not empty: the entries are trimmed lines with text.
        let synset = text.split_whitespace().next().unwrap_or_default();
        if let Some(&class) = map.get(synset) {
            return Err(Error::data(
                path,
                Some(line),
                format!(
                    "synset {} is already class {class} (line {})",
                    excerpt(synset, EXCERPT_CHARS),
                    line_of_class[class]
                ),
            ));
        }
        map.insert(synset.to_string(), map.len());
        line_of_class.push(line);
    }
    if map.is_empty() {
        return Err(Error::data(path, None, "no synsets"));
    }
    Ok(map)
}

/// Reads every `*.xml` in `boxes_dir`; images are looked up in `images_dir` by the file's
/// `<filename>` (with the extension it has there, or `.JPEG`, `.jpg`, `.png` added). The label is
/// the class of the largest box.
///
/// A `<filename>` must stay inside `images_dir`: an absolute path or a `..` is refused, and so
/// is a name that resolves outside it through a symbolic link (the link's target must be inside
/// `images_dir` too; give the folder the links point into as `images_dir` instead).
pub fn read_voc(
    boxes_dir: &Path,
    images_dir: &Path,
    synsets: &HashMap<String, usize>,
) -> Result<Dataset> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let entries = std::fs::read_dir(boxes_dir).map_err(io(boxes_dir))?;
    let images_root = std::fs::canonicalize(images_dir).map_err(io(images_dir))?;
    let mut builder = Builder::new(boxes_dir.display().to_string());
    let mut files = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => files.push(e.path()),
            Err(e) => builder.skip(format!("{}: {e}", boxes_dir.display())),
        }
    }
    files.retain(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")));
    files.sort();
    for file in files {
        match read_one(&file, images_dir, &images_root, synsets) {
            Ok(sample) => builder.push(sample),
            Err(reason) => builder.skip(format!("{}: {reason}", file.display())),
        }
    }
    Ok(builder.finish())
}

fn read_one(
    file: &Path,
    images_dir: &Path,
    images_root: &Path,
    synsets: &HashMap<String, usize>,
) -> Result<Sample, String> {
    // The caller names the file.
    let bytes = read_bounded(file, MAX_XML_BYTES, "box file").map_err(|e| match e {
        Error::Data { message, .. } => message,
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    })?;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let text = std::str::from_utf8(body).map_err(|e| {
        format!(
            "not UTF-8 text (line {}); expected an XML box file",
            line_of(body, e.valid_up_to())
        )
    })?;
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| format!("not XML ({})", excerpt(&e.to_string(), 2 * EXCERPT_CHARS)))?;
    let root = doc.root_element();
    let child_text = |node: roxmltree::Node, name: &str| -> Option<String> {
        node.children()
            .find(|c| c.has_tag_name(name))
            .and_then(|c| c.text())
            .map(|t| t.trim().to_string())
    };
    let filename = child_text(root, "filename").ok_or("no <filename>")?;
    let relative = inside_name(&filename)?;
    let image = ["", ".JPEG", ".jpg", ".png"]
        .iter()
        .map(|ext| {
            let mut name = relative.as_os_str().to_owned();
            name.push(ext);
            images_dir.join(name)
        })
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "image {} not found in {}",
                excerpt(&filename, EXCERPT_CHARS),
                images_dir.display()
            )
        })?;
    let resolved =
        std::fs::canonicalize(&image).map_err(|e| format!("{}: {e}", image.display()))?;
    if !resolved.starts_with(images_root) {
        return Err(format!(
            "image {} resolves to {}, outside the images folder {} (a symbolic link that leaves \
             it)",
            image.display(),
            resolved.display(),
            images_root.display()
        ));
    }
    let mut boxes = Vec::new();
    for object in root.children().filter(|c| c.has_tag_name("object")) {
        let name = child_text(object, "name").ok_or("an <object> without <name>")?;
        let label = *synsets.get(&name).ok_or_else(|| {
            format!(
                "synset {} is not in the synset map",
                excerpt(&name, EXCERPT_CHARS)
            )
        })?;
        let bndbox = object
            .children()
            .find(|c| c.has_tag_name("bndbox"))
            .ok_or("an <object> without <bndbox>")?;
        let coord = |tag: &str| -> Result<u32, String> {
            let text = child_text(bndbox, tag).ok_or_else(|| format!("no <{tag}> in <bndbox>"))?;
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && (0.0..=u32::MAX as f64).contains(v))
                .map(|v| v.round() as u32)
                .ok_or_else(|| {
                    format!(
                        "<{tag}> {}: expected a pixel coordinate (a number 0‥{})",
                        excerpt(&text, EXCERPT_CHARS),
                        u32::MAX
                    )
                })
        };
        let b = LabelBox {
            label,
            x0: coord("xmin")?.saturating_sub(1),
            y0: coord("ymin")?.saturating_sub(1),
            x1: coord("xmax")?,
            y1: coord("ymax")?,
        };
        if b.x1 <= b.x0 || b.y1 <= b.y0 {
            return Err(format!("empty box for {}", excerpt(&name, EXCERPT_CHARS)));
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
        extra: Default::default(),
    })
}

/// A `<filename>` as a path that cannot leave the folder it is joined to: relative, without `..`.
fn inside_name(filename: &str) -> Result<PathBuf, String> {
    let path = Path::new(filename);
    if filename.is_empty() {
        return Err("empty <filename>".into());
    }
    if filename.contains('\0') {
        return Err("<filename> holds a NUL character".into());
    }
    if !path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "<filename> {} leaves the images folder (an absolute path or ..); expected a name \
             inside it",
            excerpt(filename, EXCERPT_CHARS)
        ));
    }
    Ok(path.to_owned())
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
