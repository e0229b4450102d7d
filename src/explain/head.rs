//! Output relevance, "heads" (docs/method.md §Heads), and the two-pass heads of the `innvestigate` preset
//! (docs/method.md §Presets). The baselines' head is the one-hot vector of the target: they differentiate `z_t`.

use super::Method;
use crate::backend::cpu::heads::head_row;

pub use crate::backend::cpu::heads::softmax;

/// The relevance `R_n` put on the logits `z` for target `t` (docs/method.md §Heads).
pub fn head(method: &Method, z: &[f32], t: usize) -> Vec<f32> {
    match method {
        Method::Custom(v) => v.clone(),
        m => head_row(z, t, m.head_rule(0), &[]),
    }
}

/// The `innvestigate` preset's target-pass and others-pass heads (docs/method.md §Presets). A ReLU sits on the
/// logits, so classes with `z_n ≤ 0` get no relevance in either pass; methods without an
/// others pass get a zero one, which makes their map the target pass alone.
pub fn innvestigate_heads(method: &Method, z: &[f32], t: usize) -> (Vec<f32>, Vec<f32>) {
    let n = z.len();
    let relu: Vec<f32> = z.iter().map(|v| v.max(0.0)).collect();
    let (target, others) = match method {
        Method::Lrp => (one_hot(n, t, relu[t]), vec![0.0; n]),
        Method::Clrp => {
            let share = if n > 1 { relu[t] / (n - 1) as f32 } else { 0.0 };
            let others = (0..n).map(|i| if i == t { 0.0 } else { share }).collect();
            (one_hot(n, t, relu[t]), others)
        }
        Method::Sglrp => {
            let y = softmax(&relu);
            let others = (0..n)
                .map(|i| if i == t { 0.0 } else { y[t] * y[i] })
                .collect();
            (one_hot(n, t, y[t] * (1.0 - y[t]) + 1e-8), others)
        }
        Method::Custom(v) => return (v.clone(), vec![0.0; n]),
        _ => return (head(method, z, t), vec![0.0; n]),
    };
    let mask = |h: Vec<f32>| -> Vec<f32> {
        h.into_iter()
            .zip(z)
            .map(|(r, &zn)| if zn > 0.0 { r } else { 0.0 })
            .collect()
    };
    (mask(target), mask(others))
}

/// `R_T − R_O · ΣR_T / ΣR_O`, or `R_T` when `ΣR_O = 0` (docs/method.md §Presets).
pub fn innvestigate_combine(target: &[f32], others: &[f32]) -> Vec<f32> {
    let sum = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>();
    let sum_o = sum(others);
    if sum_o == 0.0 {
        return target.to_vec();
    }
    let ratio = sum(target) / sum_o;
    target
        .iter()
        .zip(others)
        .map(|(&t, &o)| (t as f64 - o as f64 * ratio) as f32)
        .collect()
}

fn one_hot(n: usize, t: usize, value: f32) -> Vec<f32> {
    let mut v = vec![0.0; n];
    v[t] = value;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const Z: [f32; 4] = [2.0, -1.0, 0.5, 3.0];

    #[test]
    fn contrastive_heads_sum_to_zero() {
        for method in [Method::Clrp, Method::Sglrp] {
            for t in 0..Z.len() {
                let h = head(&method, &Z, t);
                let sum: f32 = h.iter().sum();
                assert!(sum.abs() < 1e-6, "{method} t={t}: sum {sum}");
            }
        }
        assert_eq!(head(&Method::Lrp, &Z, 2), vec![0.0, 0.0, 0.5, 0.0]);
    }

    #[test]
    fn sglrp_head_is_the_softmax_gradient() {
        // ∂ŷ_t/∂z_n by finite differences.
        let t = 2;
        let h = head(&Method::Sglrp, &Z, t);
        for n in 0..Z.len() {
            let mut zp = Z;
            zp[n] += 1e-3;
            let mut zm = Z;
            zm[n] -= 1e-3;
            let grad = (softmax(&zp)[t] - softmax(&zm)[t]) / 2e-3;
            assert!((grad - h[n]).abs() < 1e-4, "n={n}: {grad} vs {}", h[n]);
        }
    }

    #[test]
    fn innvestigate_heads_mask_nonpositive_logits() {
        let (t, o) = innvestigate_heads(&Method::Clrp, &Z, 0);
        assert_eq!(t, vec![2.0, 0.0, 0.0, 0.0]);
        assert_eq!(o, vec![0.0, 0.0, 2.0 / 3.0, 2.0 / 3.0]);
        let (t, o) = innvestigate_heads(&Method::Sglrp, &Z, 1);
        assert!(t.iter().all(|&v| v == 0.0), "z_1 < 0: no target relevance");
        assert_eq!(o[1], 0.0);
        assert!(o[3] > 0.0);
    }

    #[test]
    fn combination_rescales_the_others_pass() {
        let combined = innvestigate_combine(&[3.0, 1.0], &[1.0, 1.0]);
        assert_eq!(combined, vec![1.0, -1.0]);
        assert_eq!(
            innvestigate_combine(&[3.0, 1.0], &[1.0, -1.0]),
            vec![3.0, 1.0]
        );
    }
}
