//! The heads of docs/method.md §Heads from the logits, row by row: the twin of `kernels/heads.cu`.

use crate::backend::{HeadRule, resolve_target, table_row};

/// Heads `(rows, classes)` and the target of each row (an f32 number; NaN, with a NaN row,
/// where the table's row is out of range), for logits `(N, classes)`; row `r` is head `r % K` of
/// image `r / K`.
pub fn heads(logits: &[f32], classes: usize, rows: usize, table: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let per_image = rows / (logits.len() / classes);
    let custom = &table[4 * rows..];
    let mut out = Vec::with_capacity(rows * classes);
    let mut targets = Vec::with_capacity(rows);
    for r in 0..rows {
        let z = &logits[(r / per_image) * classes..][..classes];
        match table_row(table, rows, classes, r) {
            Some(spec) => {
                let t = resolve_target(z, spec.target);
                out.extend(head_row(z, t, spec.rule, custom));
                targets.push(t as f32);
            }
            None => {
                out.extend(std::iter::repeat_n(f32::NAN, classes));
                targets.push(f32::NAN);
            }
        }
    }
    (out, targets)
}

/// One head row: the values the rule puts on each class for target `t`.
pub fn head_row(z: &[f32], t: usize, rule: HeadRule, custom: &[f32]) -> Vec<f32> {
    let n = z.len();
    let one_hot = |value: f32| (0..n).map(move |i| if i == t { value } else { 0.0 });
    match rule {
        HeadRule::Lrp => one_hot(z[t]).collect(),
        HeadRule::OneHot => one_hot(1.0).collect(),
        HeadRule::Clrp => {
            let others = if n > 1 { -z[t] / (n - 1) as f32 } else { 0.0 };
            (0..n).map(|i| if i == t { z[t] } else { others }).collect()
        }
        HeadRule::Sglrp => {
            let y = softmax(z);
            (0..n)
                .map(|i| {
                    if i == t {
                        y[t] * (1.0 - y[t])
                    } else {
                        -y[t] * y[i]
                    }
                })
                .collect()
        }
        HeadRule::Custom(i) => custom[i * n..][..n].to_vec(),
    }
}

/// `softmax(z)`, computed in f64 with the maximum subtracted.
pub fn softmax(z: &[f32]) -> Vec<f32> {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = z.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| (e / sum) as f32).collect()
}
