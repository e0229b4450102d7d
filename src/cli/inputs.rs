//! From the INPUTS arguments (files, folders, glob patterns) to a list of images, each with a
//! key: the output sub-folder that is its own.
//!
//! Keys: a file given by name → its stem (`cat.jpg` → `cat`); a folder → the folder's name and
//! each image's path inside it without the extension (`photos/` → `photos/2024/cat`); a glob
//! match → like a file (or a folder, if it matched one). Two inputs whose keys clash (`a.png`
//! and `a.jpg`, or `x/a.png` and `y/a.png` given by name) each get `-` and 8 hex digits of a hash
//! of their absolute path appended, so every image has its own folder and a rerun with the same
//! inputs finds the same folders.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sglrp::io::images::{EXTENSIONS, has_image_extension};

/// One image to process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The path as found (relative paths stay relative).
    pub path: PathBuf,
    /// The output sub-folder, relative to the output folder.
    pub key: PathBuf,
}

/// The images found and one error line per argument that yielded none.
#[derive(Debug, Default)]
pub struct Expanded {
    pub inputs: Vec<Input>,
    pub errors: Vec<String>,
}

/// Expands the arguments in order; folders are walked in file-name order, leaving out
/// `exclude` (the output folder, whose pictures are not inputs).
pub fn expand(args: &[String], exclude: Option<&Path>) -> Expanded {
    let exclude = exclude.and_then(|p| std::fs::canonicalize(p).ok());
    let mut out = Expanded::default();
    let mut seen = HashSet::new();
    let mut push = |out: &mut Expanded, path: PathBuf, key: PathBuf| {
        let id = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if seen.insert(id) {
            out.inputs.push(Input { path, key });
        }
    };
    for arg in args {
        let path = Path::new(arg);
        // symlink_metadata: a dangling link is an input that fails to read, not a missing one.
        if path.symlink_metadata().is_ok() {
            if path.is_dir() {
                expand_folder(path, exclude.as_deref(), &mut out, &mut push);
            } else {
                push(&mut out, path.to_owned(), stem_key(path));
            }
        } else if arg.contains(['*', '?', '[']) {
            expand_glob(arg, exclude.as_deref(), &mut out, &mut push);
        } else {
            out.errors.push(format!("{arg}: no such file or folder"));
        }
    }
    for input in &mut out.inputs {
        input.key = safe_key(&input.key);
    }
    dedupe_keys(&mut out.inputs);
    out
}

/// `key` with only plain components, none of them all dots: it stays inside the output folder.
fn safe_key(key: &Path) -> PathBuf {
    let parts: PathBuf = key
        .components()
        .map(|c| match c {
            std::path::Component::Normal(name) => {
                let name = name.to_string_lossy();
                if name.chars().all(|ch| ch == '.') {
                    format!("_{name}")
                } else {
                    name.into_owned()
                }
            }
            std::path::Component::ParentDir => "_..".to_string(),
            std::path::Component::CurDir => "_.".to_string(),
            _ => "_".to_string(),
        })
        .collect();
    if parts.as_os_str().is_empty() {
        PathBuf::from("_")
    } else {
        parts
    }
}

fn expand_glob(
    pattern: &str,
    exclude: Option<&Path>,
    out: &mut Expanded,
    push: &mut impl FnMut(&mut Expanded, PathBuf, PathBuf),
) {
    let paths = match glob::glob(pattern) {
        Ok(paths) => paths,
        Err(e) => {
            out.errors
                .push(format!("{pattern}: invalid pattern ({})", e.msg));
            return;
        }
    };
    let mut matched = false;
    for entry in paths {
        matched = true;
        match entry {
            Ok(path) if path.is_dir() => expand_folder(&path, exclude, out, push),
            Ok(path) => {
                let key = stem_key(&path);
                push(out, path, key);
            }
            Err(e) => out
                .errors
                .push(format!("{}: {}", e.path().display(), e.error())),
        }
    }
    if !matched {
        out.errors.push(format!("{pattern}: no file matches"));
    }
}

fn expand_folder(
    dir: &Path,
    exclude: Option<&Path>,
    out: &mut Expanded,
    push: &mut impl FnMut(&mut Expanded, PathBuf, PathBuf),
) {
    let name = folder_name(dir);
    let mut found = false;
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            // The output folder of this run is no input, even inside an input folder.
            !(e.file_type().is_dir()
                && exclude.is_some_and(|x| std::fs::canonicalize(e.path()).is_ok_and(|p| p == x)))
        });
    for entry in walker {
        match entry {
            Ok(entry) if entry.file_type().is_file() && has_image_extension(entry.path()) => {
                found = true;
                let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
                let key = name.join(relative.with_extension(""));
                push(out, entry.path().to_owned(), key);
            }
            Ok(_) => {}
            Err(e) => {
                let at = e
                    .path()
                    .map_or_else(|| dir.display().to_string(), |p| p.display().to_string());
                let reason = e
                    .io_error()
                    .map_or_else(|| e.to_string(), ToString::to_string);
                out.errors.push(format!("{at}: {reason}"));
            }
        }
    }
    if !found {
        out.errors.push(format!(
            "{}: folder contains no images (looked for .{})",
            dir.display(),
            EXTENSIONS.join(" .")
        ));
    }
}

/// A key as the identity `--shard` partitions by: the same string on every platform.
pub fn key_id(key: &Path) -> String {
    key.to_string_lossy().replace('\\', "/")
}

/// A file's key: its stem (its name if it has none).
fn stem_key(path: &Path) -> PathBuf {
    PathBuf::from(
        path.file_stem()
            .or_else(|| path.file_name())
            .unwrap_or_else(|| "image".as_ref()),
    )
}

/// A folder's name, resolving `.`, `..` and `/`.
fn folder_name(dir: &Path) -> PathBuf {
    let resolved = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    PathBuf::from(resolved.file_name().unwrap_or_else(|| "root".as_ref()))
}

/// Appends `-<hash>` to every key shared by several inputs.
fn dedupe_keys(inputs: &mut [Input]) {
    let mut count: HashMap<PathBuf, usize> = HashMap::new();
    for input in inputs.iter() {
        *count.entry(input.key.clone()).or_default() += 1;
    }
    for input in inputs.iter_mut() {
        if count[&input.key] > 1 {
            let id = std::fs::canonicalize(&input.path).unwrap_or_else(|_| input.path.clone());
            let hash = fnv1a(id.to_string_lossy().as_bytes());
            let mut name = input.key.file_name().unwrap_or_default().to_os_string();
            name.push(format!("-{:08x}", hash as u32));
            input.key.set_file_name(name);
        }
    }
}

/// 64-bit FNV-1a: a hash that stays the same across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn folders_files_and_globs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("set/b.png"));
        touch(&root.join("set/sub/a.JPG"));
        touch(&root.join("set/notes.txt"));
        touch(&root.join("one.webp"));
        touch(&root.join("g/x.bmp"));
        touch(&root.join("g/y.bmp"));
        std::fs::create_dir_all(root.join("empty")).unwrap();
        let arg = |p: &str| root.join(p).to_string_lossy().into_owned();
        std::fs::create_dir_all(root.join("set/out/x")).unwrap();
        touch(&root.join("set/out/x/grid.png"));
        let got = expand(
            &[
                arg("set"),
                arg("one.webp"),
                arg("g/*.bmp"),
                arg("empty"),
                arg("missing.png"),
                arg("nothing/*.png"),
            ],
            Some(&root.join("set/out")),
        );
        let keys: Vec<_> = got.inputs.iter().map(|i| i.key.clone()).collect();
        assert_eq!(
            keys,
            [
                PathBuf::from("set/b"),
                PathBuf::from("set/sub/a"),
                PathBuf::from("one"),
                PathBuf::from("x"),
                PathBuf::from("y"),
            ]
        );
        assert_eq!(got.errors.len(), 3, "{:?}", got.errors);
        assert!(got.errors[0].contains("empty") && got.errors[0].contains("no images"));
        assert!(got.errors[1].contains("missing.png"));
        assert!(got.errors[2].contains("no file matches"));
    }

    #[test]
    fn keys_never_leave_the_output_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("...png"));
        touch(&root.join("set/....png"));
        let arg = |p: &str| root.join(p).to_string_lossy().into_owned();
        let got = expand(&[arg("...png"), arg("set")], None);
        let keys: Vec<_> = got.inputs.iter().map(|i| i.key.clone()).collect();
        assert_eq!(keys, [PathBuf::from("_.."), PathBuf::from("set/_...")]);
        for key in &keys {
            assert!(
                key.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            );
        }
        assert_eq!(safe_key(Path::new("../a/./b")), PathBuf::from("_../a/b"));
        assert_eq!(safe_key(Path::new("/x")), PathBuf::from("_/x"));
    }

    #[test]
    fn clashing_keys_get_a_hash_and_duplicates_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("a.png"));
        touch(&root.join("a.jpg"));
        let arg = |p: &str| root.join(p).to_string_lossy().into_owned();
        let got = expand(&[arg("a.png"), arg("a.jpg"), arg("a.png")], None);
        assert_eq!(got.inputs.len(), 2);
        let (k0, k1) = (&got.inputs[0].key, &got.inputs[1].key);
        assert_ne!(k0, k1);
        assert!(k0.to_string_lossy().starts_with("a-") && k0.to_string_lossy().len() == 10);
        // The same inputs give the same keys.
        let again = expand(&[arg("a.png"), arg("a.jpg")], None);
        assert_eq!(&again.inputs[0].key, k0);
    }
}
