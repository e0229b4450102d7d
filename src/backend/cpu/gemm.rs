//! Single-threaded f32 GEMM on row-major slices, through the `gemm` crate. The CPU backend
//! parallelises over independent bands itself, so each product's summation order depends only on
//! its own sizes: results are deterministic and do not depend on the batch.

/// `c (m×n) = a (m×k) · b (k×n)`, all row-major and contiguous.
pub fn matmul(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "matmul: slices too short"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    // SAFETY: the assertion above keeps every index the strides reach inside the slices, and
    // `c` is borrowed mutably, so it aliases neither `a` nor `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Runs `body` compiled with AVX2 and FMA when the CPU has them (so that `mul_add` is one
/// instruction and the loops vectorise eight wide), otherwise as plain code. The summation
/// order is the same either way.
#[inline(always)]
fn with_fma<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn fast<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features `fast` is compiled for.
            return unsafe { fast(body) };
        }
    }
    body()
}

/// Dot product with eight independent partial sums: vectorised, and in a fixed order.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    with_fma(
        #[inline(always)]
        || {
            const LANES: usize = 8;
            let mut acc = [0.0f32; LANES];
            let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
            let (ra, rb) = (ca.remainder(), cb.remainder());
            for (x, y) in ca.zip(cb) {
                for l in 0..LANES {
                    acc[l] = x[l].mul_add(y[l], acc[l]);
                }
            }
            let mut tail = 0.0;
            for (x, y) in ra.iter().zip(rb) {
                tail = x.mul_add(*y, tail);
            }
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
        },
    )
}

/// `acc += alpha · x`, elementwise.
pub fn axpy(acc: &mut [f32], alpha: f32, x: &[f32]) {
    with_fma(
        #[inline(always)]
        || {
            acc.iter_mut()
                .zip(x)
                .for_each(|(c, v)| *c = v.mul_add(alpha, *c))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive_on_odd_sizes() {
        let (m, n, k) = (7, 5, 13);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 11) as f32) - 5.0).collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 3 % 7) as f32) * 0.5 - 1.0)
            .collect();
        let mut c = vec![f32::NAN; m * n];
        matmul(m, n, k, &a, &b, &mut c);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert!((c[i * n + j] - want).abs() < 1e-4, "({i},{j})");
            }
        }
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.25).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.125).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - want).abs() < 1e-3);
    }
}
