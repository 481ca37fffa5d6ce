//! Scalar building blocks written so that LLVM vectorises the loops that call them
//! (AVX2/AVX-512 with `-C target-cpu=native`): no branches, no calls, fixed-width lane arrays.

/// Lanes of the accumulator arrays: 16 f32 = one AVX-512 or two AVX2 registers.
pub(crate) const LANES: usize = 16;

/// `a * b + c`, fused where the target has FMA (one instruction), plain otherwise
/// (`f32::mul_add` without hardware FMA is a slow libm call).
#[inline(always)]
pub(crate) fn fmadd(a: f32, b: f32, c: f32) -> f32 {
    if cfg!(target_feature = "fma") {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `e^x`, branch-free: range reduction `x = n ln2 + r` with `|r| <= ln2/2`, a degree-6
/// polynomial for `e^r` (Cephes `expf` coefficients) and `2^n` built from the exponent bits.
///
/// Relative error below 3e-7 on `[-87, 88]`; below -87 (where `e^x` < 1.7e-38) it returns 0,
/// so `-inf` gives exactly 0, and above 88 it saturates at `e^88` instead of `inf` (softmax
/// only feeds it `x <= 0`). NaN propagates.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n * LN2_HI is exact for |n| < 2^9 (LN2_HI is 0.693359375 exactly).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to the nearest integer, which lands in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let underflow = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let t = fmadd(x, LOG2E, MAGIC);
    let n = t - MAGIC;
    let n_bits = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = fmadd(-n, LN2_HI, x);
    let r = fmadd(-n, LN2_LO, r);
    let mut p = 1.987_569_1e-4;
    p = fmadd(p, r, 1.398_199_9e-3);
    p = fmadd(p, r, 8.333_452e-3);
    p = fmadd(p, r, 4.166_579_6e-2);
    p = fmadd(p, r, 1.666_666_5e-1);
    p = fmadd(p, r, 0.5);
    let er = fmadd(p * r, r, r) + 1.0;
    // n is in [-126, 127] after the clamp, so n + 127 is a valid biased exponent.
    let scale = f32::from_bits(((n_bits + 127) as u32) << 23);
    // A select, not a branch: the loops calling this stay vectorised.
    if underflow {
        0.0
    } else {
        er * scale
    }
}

/// Largest element of `x` (`-inf` for an empty slice). NaNs are not propagated reliably.
#[inline]
pub(crate) fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in chunks.remainder().iter().chain(acc.iter()) {
        m = if v > m { v } else { m };
    }
    m
}

/// Replaces every element of `x` by `e^(x - m)` and returns their sum.
#[inline]
pub(crate) fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            let e = exp(c[l] - m);
            c[l] = e;
            acc[l] += e;
        }
    }
    let mut s = 0f32;
    for v in chunks.into_remainder() {
        let e = exp(*v - m);
        *v = e;
        s += e;
    }
    s + acc.iter().sum::<f32>()
}

/// Writes `e^(src[j] - m)` to `dst[j]` and returns their sum.
#[inline]
pub(crate) fn exp_sub_sum_into(src: &[f32], dst: &mut [f32], m: f32) -> f32 {
    debug_assert_eq!(src.len(), dst.len());
    let mut acc = [0f32; LANES];
    let mut cs = src.chunks_exact(LANES);
    let mut cd = dst.chunks_exact_mut(LANES);
    for (s, d) in (&mut cs).zip(&mut cd) {
        for l in 0..LANES {
            let e = exp(s[l] - m);
            d[l] = e;
            acc[l] += e;
        }
    }
    let mut sum = 0f32;
    for (s, d) in cs.remainder().iter().zip(cd.into_remainder()) {
        let e = exp(*s - m);
        *d = e;
        sum += e;
    }
    sum + acc.iter().sum::<f32>()
}

/// Multiplies every element of `x` by `s`.
#[inline]
pub(crate) fn scale(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let got = exp(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_37;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert!(exp(100.0) > 1e38 && exp(100.0).is_finite());
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn reductions() {
        let x: Vec<f32> = (0..37).map(|i| ((i * 7) % 11) as f32 - 3.0).collect();
        assert_eq!(max(&x), 7.0);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        let mut s = x.clone();
        let sum = exp_sub_sum(&mut s, max(&x));
        scale(&mut s, 1.0 / sum);
        let mut s2 = vec![0f32; x.len()];
        assert_eq!(exp_sub_sum_into(&x, &mut s2, 7.0), sum);
        scale(&mut s2, 1.0 / sum);
        assert_eq!(s, s2);
        let m = 7.0f64;
        let z: f64 = x.iter().map(|&v| (v as f64 - m).exp()).sum();
        for (got, &v) in s.iter().zip(&x) {
            assert!((*got as f64 - (v as f64 - m).exp() / z).abs() < 1e-7);
        }
    }
}
