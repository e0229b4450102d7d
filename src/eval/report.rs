//! What an evaluation leaves in its output folder once every image is scored (docs/evaluation.md
//! §Statistics): `summary.json`, `summary.csv`, `per_image.csv`, the three charts, and the table a
//! command line prints. One process and a merge of shards both end here, with the scores in the
//! canonical order of [`summary::canonical_order`], so they write the same files.

use std::collections::BTreeMap;
use std::path::Path;

use super::ImageScores;
use super::summary::{self, Curves, MethodSummary, Summary};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::render::chart::{Chart, Series, write_chart};

/// Writes the results of `scores` (any order) into `out`; returns the closing table.
pub fn write_results(
    out: &Path,
    mut scores: Vec<ImageScores>,
    mut skipped: Vec<String>,
    patch_sizes: &[usize],
    energies: &[f64],
) -> Result<String> {
    summary::canonical_order(&mut scores, &mut skipped);
    let summary = Summary::new(&scores, &skipped, patch_sizes, energies);
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::Request(e.to_string()))?;
    write_atomic(&out.join("summary.json"), json.as_bytes())?;
    write_atomic(&out.join("summary.csv"), summary.csv().as_bytes())?;
    write_atomic(
        &out.join("per_image.csv"),
        per_image_csv(&scores, patch_sizes, energies).as_bytes(),
    )?;

    let mean = &summary.methods;
    // Error bars of one standard error, where every point has one (not for a single image).
    let curves = |pick: fn(&Curves<f64>) -> &Vec<f64>,
                  pick_se: fn(&Curves<Option<f64>>) -> &Vec<Option<f64>>,
                  xs: &[f64]|
     -> Vec<Series> {
        mean.iter()
            .map(|m: &MethodSummary| Series {
                label: title(&m.method),
                points: xs
                    .iter()
                    .copied()
                    .zip(pick(&m.mean).iter().copied())
                    .collect(),
                standard_errors: pick_se(&m.standard_error).iter().copied().collect(),
            })
            .collect()
    };
    let sizes: Vec<f64> = patch_sizes.iter().map(|&p| p as f64).collect();
    let percent: Vec<f64> = energies.iter().map(|e| e * 100.0).collect();
    let n = scores.len();
    let charts = [
        (
            "masking_label",
            format!("Maximal patch masking, t = ground truth ({n} images)"),
            "patch size p",
            "mean Δŷ_t",
            curves(|c| &c.masking_label, |c| &c.masking_label, &sizes),
        ),
        (
            "masking_second",
            format!("Maximal patch masking, t = second most probable ({n} images)"),
            "patch size p",
            "mean Δŷ_t",
            curves(|c| &c.masking_second, |c| &c.masking_second, &sizes),
        ),
        (
            "pointing",
            format!("Pointing game with energy ({n} images)"),
            "energy E (%)",
            "mean accuracy",
            curves(|c| &c.pointing, |c| &c.pointing, &percent),
        ),
    ];
    for (stem, chart_title, x_label, y_label, series) in &charts {
        let chart = Chart {
            title: chart_title,
            x_label,
            y_label,
            series,
        };
        write_chart(&out.join(stem), &chart)?;
    }
    Ok(table(&summary))
}

fn title(name: &str) -> String {
    name.parse::<crate::explain::Method>()
        .map(|m| m.title().to_string())
        .unwrap_or_else(|_| name.to_string())
}

fn per_image_csv(scores: &[ImageScores], patch_sizes: &[usize], energies: &[f64]) -> String {
    let mut header = vec![
        "image".to_string(),
        "label".into(),
        "predicted".into(),
        "second".into(),
        "method".into(),
    ];
    header.extend(patch_sizes.iter().map(|p| format!("masking_label_p{p}")));
    header.extend(patch_sizes.iter().map(|p| format!("masking_second_p{p}")));
    header.extend(
        energies
            .iter()
            .map(|e| format!("pointing_e{:.0}", e * 100.0)),
    );
    let mut csv = header.join(",") + "\n";
    for s in scores {
        for m in &s.methods {
            let values = m
                .masking_label
                .iter()
                .chain(&m.masking_second)
                .chain(&m.pointing);
            let row: Vec<String> = [
                csv_field(&s.image),
                s.label.to_string(),
                s.predicted.to_string(),
                s.second.to_string(),
                m.method.clone(),
            ]
            .into_iter()
            .chain(values.map(|v| v.to_string()))
            .collect();
            csv += &(row.join(",") + "\n");
        }
    }
    csv
}

/// Quotes a CSV field when it needs it.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The closing table: mean Δŷ_t per patch size for both targets, and the pointing accuracy at a
/// few energies.
fn table(summary: &Summary) -> String {
    let mean = &summary.methods;
    let mut text = format!(
        "{} images evaluated, {} skipped\n\n",
        summary.images, summary.skipped
    );
    let sizes: Vec<String> = summary
        .patch_sizes
        .iter()
        .map(|p| format!("p={p:<6}"))
        .collect();
    for (label, pick) in [
        (
            "mean Δŷ_t, t = ground truth",
            (|m: &MethodSummary| m.mean.masking_label.clone()) as fn(&MethodSummary) -> Vec<f64>,
        ),
        (
            "mean Δŷ_t, t = second most probable",
            |m: &MethodSummary| m.mean.masking_second.clone(),
        ),
    ] {
        text += &format!("{label}\n{:<18}{}\n", "", sizes.join(" "));
        for m in mean {
            let row: Vec<String> = pick(m).iter().map(|v| format!("{v:+.4}  ")).collect();
            text += &format!("{:<18}{}\n", title(&m.method), row.join(" "));
        }
        text += "\n";
    }
    let shown: BTreeMap<usize, String> = summary
        .energies
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            [0.05, 0.25, 0.5, 0.75, 1.0]
                .iter()
                .any(|x| (*x - **e).abs() < 1e-9)
        })
        .map(|(k, e)| (k, format!("E={:<5}", format!("{:.0}%", e * 100.0))))
        .collect();
    text += &format!(
        "pointing accuracy\n{:<18}{}\n",
        "",
        shown.values().cloned().collect::<Vec<_>>().join("  ")
    );
    for m in mean {
        let row: Vec<String> = shown
            .keys()
            .map(|&k| format!("{:.4} ", m.mean.pointing[k]))
            .collect();
        text += &format!("{:<18}{}\n", title(&m.method), row.join("  "));
    }
    text
}
