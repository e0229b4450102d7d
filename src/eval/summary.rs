//! The summary of an evaluation (docs/evaluation.md §Statistics): per method, metric and `p` or
//! `E`, the mean over images with its standard error and 95 % interval, and the same for the
//! paired differences SGLRP − each other method.
//!
//! The images are taken in one canonical order (by name, then label) before anything is summed,
//! so a run split into shards and merged gives the summary of one process to the last bit.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{ImageScores, MethodScores};

/// The method every other is compared with, paired image by image.
pub const REFERENCE_METHOD: &str = "sglrp";

/// One value per `p` (masking) or `E` (pointing), as [`MethodScores`] has them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curves<T> {
    pub masking_label: Vec<T>,
    pub masking_second: Vec<T>,
    pub pointing: Vec<T>,
}

/// A mean with its standard error `s/√n` and 95 % interval `mean ± t₀.₉₇₅,ₙ₋₁ · SE`; both are
/// `None` (JSON `null`) for a single image, where `s` is undefined.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    pub standard_error: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

impl Estimate {
    /// Of `values`, summed in the order given; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Estimate> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Some(Estimate {
                mean,
                standard_error: None,
                ci95: None,
            });
        }
        let variance = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let se = (variance / n as f64).sqrt();
        let half = t_975(n - 1) * se;
        Some(Estimate {
            mean,
            standard_error: Some(se),
            ci95: Some([mean - half, mean + half]),
        })
    }
}

/// The 97.5 % quantile of Student's t with `dof` degrees of freedom.
pub fn t_975(dof: usize) -> f64 {
    StudentsT::new(0.0, 1.0, dof as f64)
        .expect("a positive number of degrees of freedom")
        .inverse_cdf(0.975)
}

/// One method's means (as the per-image record has them, so `methods[i].masking_label[k]` is a
/// mean) with their standard errors and intervals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodSummary {
    pub method: String,
    #[serde(flatten)]
    pub mean: Curves<f64>,
    pub standard_error: Curves<Option<f64>>,
    pub ci95: Curves<Option<[f64; 2]>>,
}

/// `method − minus`, image by image, summarised like a method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub method: String,
    pub minus: String,
    pub mean: Curves<f64>,
    pub standard_error: Curves<Option<f64>>,
    pub ci95: Curves<Option<[f64; 2]>>,
}

/// `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub images: usize,
    pub skipped: usize,
    pub skipped_reasons: Vec<String>,
    pub patch_sizes: Vec<usize>,
    pub energies: Vec<f64>,
    pub methods: Vec<MethodSummary>,
    /// SGLRP − each other method, when SGLRP was evaluated.
    pub differences: Vec<Difference>,
}

/// Puts scores and skip reasons in the canonical order every summary is computed in.
pub fn canonical_order(scores: &mut [ImageScores], skipped: &mut [String]) {
    scores.sort_by(|a, b| (&a.image, a.label).cmp(&(&b.image, b.label)));
    skipped.sort();
}

impl Summary {
    /// The summary of `scores` (in canonical order, see [`canonical_order`]).
    pub fn new(
        scores: &[ImageScores],
        skipped: &[String],
        patch_sizes: &[usize],
        energies: &[f64],
    ) -> Summary {
        let names: Vec<String> = scores.first().map_or_else(Vec::new, |s| {
            s.methods.iter().map(|m| m.method.clone()).collect()
        });
        let method =
            |m: usize| -> Vec<&MethodScores> { scores.iter().map(|s| &s.methods[m]).collect() };
        let methods = (0..names.len())
            .map(|m| {
                let e = summarise(&method(m), None);
                MethodSummary {
                    method: names[m].clone(),
                    mean: e.map(|e| e.mean),
                    standard_error: e.map(|e| e.standard_error),
                    ci95: e.map(|e| e.ci95),
                }
            })
            .collect();
        let differences = match names.iter().position(|n| n == REFERENCE_METHOD) {
            Some(r) => (0..names.len())
                .filter(|&m| m != r)
                .map(|m| {
                    let e = summarise(&method(r), Some(&method(m)));
                    Difference {
                        method: names[r].clone(),
                        minus: names[m].clone(),
                        mean: e.map(|e| e.mean),
                        standard_error: e.map(|e| e.standard_error),
                        ci95: e.map(|e| e.ci95),
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        Summary {
            images: scores.len(),
            skipped: skipped.len(),
            skipped_reasons: skipped.to_vec(),
            patch_sizes: patch_sizes.to_vec(),
            energies: energies.to_vec(),
            methods,
            differences,
        }
    }

    /// `summary.csv`: one row per method (or difference `sglrp-lrp`), metric and `p` or `E`;
    /// undefined standard errors and intervals are empty fields.
    pub fn csv(&self) -> String {
        let mut csv =
            String::from("method,metric,parameter,mean,standard_error,ci95_low,ci95_high\n");
        let rows = self
            .methods
            .iter()
            .map(|m| (m.method.clone(), &m.mean, &m.standard_error, &m.ci95))
            .chain(self.differences.iter().map(|d| {
                (
                    format!("{}-{}", d.method, d.minus),
                    &d.mean,
                    &d.standard_error,
                    &d.ci95,
                )
            }));
        let sizes: Vec<String> = self.patch_sizes.iter().map(|p| p.to_string()).collect();
        let energies: Vec<String> = self.energies.iter().map(|e| format!("{e:.2}")).collect();
        for (name, mean, se, ci) in rows {
            let metrics = [
                (
                    "masking_label",
                    &sizes,
                    &mean.masking_label,
                    &se.masking_label,
                    &ci.masking_label,
                ),
                (
                    "masking_second",
                    &sizes,
                    &mean.masking_second,
                    &se.masking_second,
                    &ci.masking_second,
                ),
                (
                    "pointing",
                    &energies,
                    &mean.pointing,
                    &se.pointing,
                    &ci.pointing,
                ),
            ];
            for (metric, params, means, ses, cis) in metrics {
                for (k, param) in params.iter().enumerate() {
                    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
                    csv += &format!(
                        "{name},{metric},{param},{},{},{},{}\n",
                        means[k],
                        opt(ses[k]),
                        opt(cis[k].map(|c| c[0])),
                        opt(cis[k].map(|c| c[1])),
                    );
                }
            }
        }
        csv
    }
}

/// Estimates of every curve point of `a` over images, or of `a − b` image by image.
fn summarise(a: &[&MethodScores], b: Option<&[&MethodScores]>) -> Curves<Estimate> {
    let curve = |pick: fn(&MethodScores) -> &Vec<f64>| -> Vec<Estimate> {
        let len = a.first().map_or(0, |m| pick(m).len());
        (0..len)
            .map(|k| {
                let values: Vec<f64> = match b {
                    None => a.iter().map(|m| pick(m)[k]).collect(),
                    Some(b) => a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| pick(x)[k] - pick(y)[k])
                        .collect(),
                };
                Estimate::of(&values).expect("at least one image")
            })
            .collect()
    };
    Curves {
        masking_label: curve(|m| &m.masking_label),
        masking_second: curve(|m| &m.masking_second),
        pointing: curve(|m| &m.pointing),
    }
}

impl<T> Curves<T> {
    fn map<U>(&self, f: impl Fn(&T) -> U) -> Curves<U> {
        Curves {
            masking_label: self.masking_label.iter().map(&f).collect(),
            masking_second: self.masking_second.iter().map(&f).collect(),
            pointing: self.pointing.iter().map(&f).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // Student's t, two-sided 95 %: 12.706 (1), 4.303 (2), 2.228 (10), 1.984 (100).
        for (dof, table) in [(1, 12.7062), (2, 4.3027), (10, 2.2281), (100, 1.9840)] {
            assert!((t_975(dof) - table).abs() < 5e-4, "{dof}: {}", t_975(dof));
        }
    }

    #[test]
    fn estimates_by_hand() {
        // 1, 2, 3, 4: mean 2.5, s² = 5/3, SE = √(5/12), t(3) = 3.18245.
        let e = Estimate::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        let se = (5.0f64 / 12.0).sqrt();
        assert_eq!(e.mean, 2.5);
        assert!((e.standard_error.unwrap() - se).abs() < 1e-15);
        let [lo, hi] = e.ci95.unwrap();
        assert!(
            (lo - (2.5 - 3.18245 * se)).abs() < 1e-4 && (hi - (2.5 + 3.18245 * se)).abs() < 1e-4
        );
        let one = Estimate::of(&[0.25]).unwrap();
        assert_eq!((one.mean, one.standard_error, one.ci95), (0.25, None, None));
        assert!(Estimate::of(&[]).is_none());
    }

    fn image(name: &str, lrp: f64, sglrp: f64) -> ImageScores {
        let scores = |method: &str, v: f64| MethodScores {
            method: method.into(),
            masking_label: vec![v],
            masking_second: vec![-v],
            pointing: vec![v / 2.0],
        };
        ImageScores {
            image: name.into(),
            label: 0,
            predicted: 0,
            second: 1,
            p_label: 0.5,
            p_second: 0.25,
            methods: vec![scores("lrp", lrp), scores("sglrp", sglrp)],
        }
    }

    #[test]
    fn paired_differences_remove_what_the_images_share() {
        // The images differ a lot, SGLRP − LRP hardly: 0.1, 0.2, 0.3 on top of 10, 20, 30.
        let scores = [
            image("a", 10.0, 10.1),
            image("b", 20.0, 20.2),
            image("c", 30.0, 30.3),
        ];
        let s = Summary::new(&scores, &[], &[1], &[1.0]);
        assert_eq!(s.images, 3);
        assert_eq!(s.differences.len(), 1);
        let d = &s.differences[0];
        assert_eq!((d.method.as_str(), d.minus.as_str()), ("sglrp", "lrp"));
        assert!((d.mean.masking_label[0] - 0.2).abs() < 1e-12);
        assert!((d.mean.masking_second[0] + 0.2).abs() < 1e-12);
        // s_d = 0.1, SE = 0.1/√3; each method's own SE is 10/√3.
        let se = d.standard_error.masking_label[0].unwrap();
        assert!((se - 0.1 / 3f64.sqrt()).abs() < 1e-12);
        let own = s.methods[0].standard_error.masking_label[0].unwrap();
        assert!((own - 10.0 / 3f64.sqrt()).abs() < 1e-12);
        let csv = s.csv();
        assert_eq!(csv.lines().count(), 1 + 3 * 3);
        let row = csv
            .lines()
            .find(|l| l.starts_with("sglrp-lrp,masking_label,1,"))
            .unwrap();
        let fields: Vec<f64> = row.split(',').skip(3).map(|f| f.parse().unwrap()).collect();
        assert!(
            (fields[0] - 0.2).abs() < 1e-12 && (fields[1] - se).abs() < 1e-12,
            "{row}"
        );
        assert!(csv.contains("sglrp-lrp,pointing,1.00,"));
    }

    #[test]
    fn canonical_order_is_by_image_then_label() {
        let mut scores = vec![image("b", 1.0, 1.0), image("a", 2.0, 2.0)];
        scores[0].label = 3;
        let mut also_b = image("b", 3.0, 3.0);
        also_b.label = 1;
        scores.push(also_b);
        let mut skipped = vec!["z: x".to_string(), "a: y".to_string()];
        canonical_order(&mut scores, &mut skipped);
        let order: Vec<(&str, usize)> =
            scores.iter().map(|s| (s.image.as_str(), s.label)).collect();
        assert_eq!(order, [("a", 0), ("b", 1), ("b", 3)]);
        assert_eq!(skipped, ["a: y", "z: x"]);
    }
}
