//! Class-name files (`--classes FILE`): one name a line (line i is class i − 1), a JSON list of
//! names, or a JSON object from index to name as Keras ships ImageNet's
//! (`{"0": ["n01440764", "tench"], …}`: the last string of a list is the name).
//!
//! A byte-order mark, `\r\n` line ends and empty lines at the end are accepted. An empty name, an
//! empty line before the last name (it would shift every class after it), a name with control
//! characters, a gap or a repeat among the indices and text that is not UTF-8 are errors that
//! name the line (or the element); a name given to two classes is a warning (ImageNet has two
//! "crane"s and two "maillot"s).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::text::{EXCERPT_CHARS, class_lines, excerpt, read_bounded};
use crate::error::{Error, Result};

/// The largest class-name file read (ImageNet-21k's names take 0.7 MB).
pub const MAX_BYTES: u64 = 4 << 20;

/// The longest class name, in bytes.
pub const MAX_NAME: usize = 1024;

/// At most this many repeated names are listed one by one in the warnings.
const LISTED_REPEATS: usize = 5;

/// The names of a class-name file, class by class, and what was odd but usable.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassNames {
    pub path: PathBuf,
    pub names: Vec<String>,
    /// One line each, for the caller to print.
    pub warnings: Vec<String>,
}

impl ClassNames {
    /// Checks that there is one name per class of a model with `classes` outputs.
    pub fn check_count(&self, classes: usize) -> Result<()> {
        if self.names.len() == classes {
            return Ok(());
        }
        Err(Error::data(
            &self.path,
            None,
            format!(
                "{} class names, but the model has {classes} classes",
                self.names.len()
            ),
        ))
    }
}

/// Reads a class-name file: JSON if it is named `*.json` or starts with `[` or `{`, one name a
/// line otherwise.
pub fn read_class_file(path: &Path) -> Result<ClassNames> {
    let bytes = read_bounded(path, MAX_BYTES, "class-name file")?;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || matches!(
            body.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'[' | b'{')
        );
    let named = if json {
        from_json(path, body)?
    } else {
        class_lines(path, &bytes, MAX_NAME, "name")?
            .into_iter()
            .map(|(name, line)| (name, At::Line(line)))
            .collect()
    };
    if named.is_empty() {
        return Err(Error::data(path, None, "no class names"));
    }
    let mut warnings = Vec::new();
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut repeats = Vec::new();
    for (class, (name, at)) in named.iter().enumerate() {
        check_name(name).map_err(|message| at.error(path, &message))?;
        if let Some(&earlier) = first.get(name.as_str()) {
            repeats.push(format!(
                "{} is both class {earlier} ({}) and class {class} ({at})",
                quote(name),
                named[earlier].1
            ));
        } else {
            first.insert(name, class);
        }
    }
    if !repeats.is_empty() {
        let more = repeats.len().saturating_sub(LISTED_REPEATS);
        repeats.truncate(LISTED_REPEATS);
        let mut text = format!(
            "{}: repeated class names: {}",
            path.display(),
            repeats.join("; ")
        );
        if more > 0 {
            text += &format!("; and {more} more");
        }
        warnings.push(text);
    }
    Ok(ClassNames {
        path: path.to_owned(),
        names: named.into_iter().map(|(name, _)| name).collect(),
        warnings,
    })
}

/// Where a name was found, for messages.
#[derive(Clone, Debug)]
enum At {
    Line(usize),
    Element(usize),
    Key(String),
}

impl At {
    fn error(&self, path: &Path, message: &str) -> Error {
        match self {
            At::Line(n) => Error::data(path, Some(*n), message),
            other => Error::data(path, None, format!("{other}: {message}")),
        }
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Line(n) => write!(f, "line {n}"),
            At::Element(i) => write!(f, "element {i}"),
            At::Key(k) => write!(f, "key {}", quote(k)),
        }
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", excerpt(text, EXCERPT_CHARS))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("empty class name".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "class name of {} bytes; the limit is {MAX_NAME}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "class name {} holds control characters",
            quote(name)
        ));
    }
    Ok(())
}

fn from_json(path: &Path, body: &[u8]) -> Result<Vec<(String, At)>> {
    let parsed: Json = serde_json::from_slice(body).map_err(|e| {
        Error::data(
            path,
            (e.line() > 0).then_some(e.line()),
            format!(
                "not a JSON list of names or object from index to name ({}); a file that \
                 starts with [ or {{ is read as JSON",
                excerpt(&e.to_string(), 2 * EXCERPT_CHARS)
            ),
        )
    })?;
    match parsed {
        Json::List(names) => Ok(names
            .into_iter()
            .enumerate()
            .map(|(i, Name(name))| (name, At::Element(i)))
            .collect()),
        Json::Object(entries) => {
            let n = entries.len();
            let mut slots: Vec<Option<(String, At)>> = vec![None; n];
            for (key, Name(name)) in entries {
                let at = At::Key(key.clone());
                let index = key
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| at.error(path, "expected a class index (0, 1, 2, …)"))?;
                let slot = slots.get_mut(index).ok_or_else(|| {
                    at.error(
                        path,
                        &format!(
                            "index {index}, but {n} entries must be the indices 0‥{}",
                            n - 1
                        ),
                    )
                })?;
                if let Some((_, earlier)) = slot {
                    return Err(at.error(path, &format!("index {index} is also {earlier}")));
                }
                *slot = Some((name, at));
            }
            // n keys, each below n, none repeated: every slot is filled.
            Ok(slots.into_iter().flatten().collect())
        }
    }
}

/// A class-name file's JSON, entries in their order (an object's repeated keys are kept, so
/// that they can be reported).
enum Json {
    List(Vec<Name>),
    Object(Vec<(String, Name)>),
}

/// A name: a string, or a list of strings whose last one is the name (`["n01440764", "tench"]`).
struct Name(String);

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of class names or an object from index to name")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element()? {
                    names.push(name);
                }
                Ok(Json::List(names))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Json::Object(entries))
            }
        }
        deserializer.deserialize_any(JsonVisitor)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a class name (a string, or a list of strings ending with the name)")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Name, E> {
                Ok(Name(name.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Name, A::Error> {
                let mut last = None;
                while let Some(part) = seq.next_element::<String>()? {
                    last = Some(part);
                }
                last.map(Name).ok_or_else(|| {
                    serde::de::Error::custom("an empty list where a class name was expected")
                })
            }
        }
        deserializer.deserialize_any(NameVisitor)
    }
}
