//! `sglrp merge OUT`: the records the shards of one run left in `OUT`, gathered and checked.
//!
//! An `eval` shard appends its scores to `per_image.K-of-N.jsonl` and, once it has finished,
//! writes `eval_shard.K-of-N.json` (how many images it scored and what it skipped). An `explain`
//! shard writes `summary.K-of-N.jsonl` when it finishes. A merge needs every one of the N shards
//! finished and refuses a folder that mixes runs split differently.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Shard, shard_file, shard_of_file};
use crate::eval::ImageScores;
use crate::io::write_atomic;

/// Stem and extension of an eval shard's scores, one JSON line per image.
pub const EVAL_RECORDS: (&str, &str) = ("per_image", "jsonl");
/// Stem and extension of the note an eval shard leaves when it has finished.
pub const EVAL_DONE: (&str, &str) = ("eval_shard", "json");
/// Stem and extension of an explain shard's summary lines.
pub const EXPLAIN_SUMMARY: (&str, &str) = ("summary", "jsonl");

/// What a finished eval shard says of itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardDone {
    /// `K/N`.
    pub shard: String,
    /// Images scored (lines of its records file).
    pub images: usize,
    /// Samples it could not use, with their reasons.
    pub skipped: Vec<String>,
}

/// Notes in `out` that `shard` of an evaluation has finished.
pub fn write_eval_done(
    out: &Path,
    shard: Shard,
    images: usize,
    skipped: &[String],
) -> Result<(), String> {
    let done = ShardDone {
        shard: shard.to_string(),
        images,
        skipped: skipped.to_vec(),
    };
    let path = out.join(shard_file(EVAL_DONE.0, EVAL_DONE.1, shard));
    let text = serde_json::to_string_pretty(&done).map_err(|e| e.to_string())? + "\n";
    write_atomic(&path, text.as_bytes()).map_err(|e| e.to_string())
}

/// The settings an evaluation's `config.json` records that its summary needs.
#[derive(Deserialize)]
struct EvalSettings {
    patch_sizes: Vec<usize>,
    energies: Vec<f64>,
}

/// Every shard's scores and skip reasons, with the run's settings.
#[derive(Debug)]
pub struct MergedEval {
    pub shards: usize,
    pub scores: Vec<ImageScores>,
    pub skipped: Vec<String>,
    pub patch_sizes: Vec<usize>,
    pub energies: Vec<f64>,
}

/// Gathers the shards of an evaluation in `out`; `None` when `out` holds none.
pub fn merge_eval(out: &Path) -> Result<Option<MergedEval>, String> {
    let Some(shards) = complete_set(out, EVAL_DONE, "eval")? else {
        return Ok(None);
    };
    let config = out.join("config.json");
    let settings: EvalSettings = std::fs::read_to_string(&config)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e} (the settings of the evaluation)", config.display()))?;
    let (mut scores, mut skipped) = (Vec::new(), Vec::new());
    for (shard, done_path) in &shards {
        let done: ShardDone = read_json(done_path)?;
        let records = out.join(shard_file(EVAL_RECORDS.0, EVAL_RECORDS.1, *shard));
        let text =
            std::fs::read_to_string(&records).map_err(|e| format!("{}: {e}", records.display()))?;
        let mut count = 0;
        for (n, line) in text.lines().enumerate() {
            let s: ImageScores = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: {e}", records.display(), n + 1))?;
            scores.push(s);
            count += 1;
        }
        if count != done.images {
            return Err(format!(
                "{}: {count} images, but {} says shard {shard} scored {}; rerun that shard",
                records.display(),
                done_path.display(),
                done.images
            ));
        }
        skipped.extend(done.skipped);
    }
    Ok(Some(MergedEval {
        shards: shards.len(),
        scores,
        skipped,
        patch_sizes: settings.patch_sizes,
        energies: settings.energies,
    }))
}

/// Joins the explain shards' `summary.K-of-N.jsonl` into `summary.jsonl`, one line per image
/// ordered by input; returns the number of shards, or `None` when `out` holds none.
pub fn merge_explain(out: &Path) -> Result<Option<usize>, String> {
    let Some(shards) = complete_set(out, EXPLAIN_SUMMARY, "explain")? else {
        return Ok(None);
    };
    let mut lines: Vec<(String, String)> = Vec::new();
    for path in shards.values() {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let record: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            let input = record["input"].as_str().unwrap_or_default().to_string();
            lines.push((input, line.to_string()));
        }
    }
    lines.sort();
    let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let summary = out.join(shard_file(
        EXPLAIN_SUMMARY.0,
        EXPLAIN_SUMMARY.1,
        Shard::whole(),
    ));
    write_atomic(&summary, text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(Some(shards.len()))
}

/// The files `stem.K-of-N.ext` in `out`, one per shard of a single split into N, all present.
fn complete_set(
    out: &Path,
    (stem, extension): (&str, &str),
    command: &str,
) -> Result<Option<BTreeMap<Shard, std::path::PathBuf>>, String> {
    let entries = std::fs::read_dir(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut found: BTreeMap<Shard, std::path::PathBuf> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", out.display()))?;
        let name = entry.file_name();
        if let Some(shard) = shard_of_file(&name.to_string_lossy(), stem, extension) {
            found.insert(shard, entry.path());
        }
    }
    let Some(first) = found.keys().next() else {
        return Ok(None);
    };
    let count = first.count();
    if let Some(other) = found.keys().find(|s| s.count() != count) {
        return Err(format!(
            "{}: holds shards of {command} runs split in {count} and in {} parts; \
             merge one run per folder",
            out.display(),
            other.count()
        ));
    }
    let missing: Vec<String> = (1..=count)
        .filter(|&k| !found.keys().any(|s| s.index() == k))
        .map(|k| format!("{k}/{count}"))
        .collect();
    if !missing.is_empty() {
        let (verb, pronoun) = if missing.len() == 1 {
            ("has", "it")
        } else {
            ("have", "them")
        };
        return Err(format!(
            "{}: {command} shard{} {} {verb} not finished (no {stem}.K-of-{count}.{extension}); \
             run {pronoun}, then merge again",
            out.display(),
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
        ));
    }
    Ok(Some(found))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", path.display()))
}
