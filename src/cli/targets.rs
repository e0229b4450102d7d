//! `--target`: `top1`, `top2`, … (the model's ranking per image), a class index, or a class name
//! (exact, then ignoring case, then one of the comma-separated synonyms of ImageNet-style names
//! such as `tench, Tinca tinca`). An unknown name is an error that suggests the closest name.

use sglrp::explain::Target;

/// A parsed target and its label in file names: `top1` or `class5`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSpec {
    pub target: Target,
    pub label: String,
}

/// Parses every `--target` value against the model's class names. A value that is not itself a
/// class name but contains commas is split on them (`top1,top2`). Duplicates are dropped.
pub fn parse_all(values: &[String], classes: &[String]) -> Result<Vec<TargetSpec>, String> {
    let mut specs: Vec<TargetSpec> = Vec::new();
    for value in values {
        let parts: Vec<&str> = if value.contains(',') && lookup(value, classes).is_none() {
            value.split(',').filter(|p| !p.trim().is_empty()).collect()
        } else {
            vec![value]
        };
        for part in parts {
            let spec = parse(part, classes)?;
            if !specs.contains(&spec) {
                specs.push(spec);
            }
        }
    }
    if specs.is_empty() {
        return Err("--target: no target given".into());
    }
    Ok(specs)
}

/// Parses one target.
pub fn parse(value: &str, classes: &[String]) -> Result<TargetSpec, String> {
    let n = classes.len();
    let text = value.trim();
    let lower = text.to_ascii_lowercase();
    if let Some(rank) = lower
        .strip_prefix("top")
        .and_then(|r| r.parse::<usize>().ok())
    {
        return if (1..=n).contains(&rank) {
            Ok(TargetSpec {
                target: Target::Rank(rank),
                label: format!("top{rank}"),
            })
        } else {
            Err(format!(
                "--target {text}: the model has {n} classes, so the ranks are top1‥top{n}"
            ))
        };
    }
    if let Ok(index) = text.parse::<usize>() {
        return if index < n {
            Ok(class_spec(index))
        } else {
            Err(format!(
                "--target {text}: class index out of range (the model has {n} classes, 0‥{})",
                n.saturating_sub(1)
            ))
        };
    }
    if let Some(index) = lookup(text, classes) {
        return Ok(class_spec(index));
    }
    let hint = closest(text, classes)
        .map(|c| format!("; did you mean \"{c}\"?"))
        .unwrap_or_default();
    Err(format!(
        "--target \"{text}\": no class of that name{hint} (`sglrp info --classes` lists them; \
         a target can also be top1, top2, … or a class index)"
    ))
}

fn class_spec(index: usize) -> TargetSpec {
    TargetSpec {
        target: Target::Class(index),
        label: format!("class{index}"),
    }
}

/// The class called `name`: exactly, ignoring case, or as one synonym of a comma-separated
/// name (only if exactly one class has it).
fn lookup(name: &str, classes: &[String]) -> Option<usize> {
    let name = name.trim();
    if let Some(i) = classes.iter().position(|c| c == name) {
        return Some(i);
    }
    let lower = name.to_lowercase();
    let by_case: Vec<usize> = (0..classes.len())
        .filter(|&i| classes[i].to_lowercase() == lower)
        .collect();
    if let [i] = by_case[..] {
        return Some(i);
    }
    let by_synonym: Vec<usize> = (0..classes.len())
        .filter(|&i| {
            classes[i]
                .split(',')
                .any(|s| s.trim().to_lowercase() == lower)
        })
        .collect();
    match by_synonym[..] {
        [i] => Some(i),
        _ => None,
    }
}

/// The class name (or synonym) closest to `name` by edit distance, ignoring case, if it is
/// close enough to be a plausible typo.
pub fn closest<'a>(name: &str, classes: &'a [String]) -> Option<&'a str> {
    let lower = name.trim().to_lowercase();
    classes
        .iter()
        .flat_map(|c| {
            std::iter::once(c.as_str()).chain(
                c.split(',')
                    .map(str::trim)
                    .filter(move |s| *s != c.as_str()),
            )
        })
        .map(|candidate| {
            let d = strsim::damerau_levenshtein(&lower, &candidate.to_lowercase());
            (d, candidate)
        })
        .filter(|(d, candidate)| {
            *d <= (candidate.chars().count().max(lower.chars().count()) / 2).max(2)
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        [
            "T-shirt/top",
            "Trouser",
            "Sandal",
            "Ankle boot",
            "tench, Tinca tinca",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn ranks_indices_and_names() {
        let c = classes();
        assert_eq!(parse("top2", &c).unwrap().target, Target::Rank(2));
        assert_eq!(parse("TOP1", &c).unwrap().label, "top1");
        assert_eq!(parse("3", &c).unwrap().target, Target::Class(3));
        assert_eq!(parse("sandal", &c).unwrap().label, "class2");
        assert_eq!(parse("Ankle boot", &c).unwrap().target, Target::Class(3));
        assert_eq!(parse("Tinca tinca", &c).unwrap().target, Target::Class(4));
        assert_eq!(
            parse("tench, Tinca tinca", &c).unwrap().target,
            Target::Class(4)
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let c = classes();
        let e = parse("Sandle", &c).unwrap_err();
        assert!(e.contains("did you mean \"Sandal\""), "{e}");
        let e = parse("5", &c).unwrap_err();
        assert!(e.contains("out of range") && e.contains("0‥4"), "{e}");
        let e = parse("top6", &c).unwrap_err();
        assert!(e.contains("top1‥top5"), "{e}");
        let e = parse("zebra crossing", &c).unwrap_err();
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn lists_split_on_commas_unless_a_name_has_them() {
        let c = classes();
        let specs = parse_all(&["top1,top2".into(), "tench, Tinca tinca".into()], &c).unwrap();
        let labels: Vec<_> = specs.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["top1", "top2", "class4"]);
        let specs = parse_all(&["top1".into(), "top1".into()], &c).unwrap();
        assert_eq!(specs.len(), 1);
    }
}
