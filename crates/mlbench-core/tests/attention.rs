//! The fused attention and softmax kernels against the plain Candle composition.

use candle_core::{DType, Device, IndexOp, Result, Tensor};
use mlbench_core::kernels::attention::{attention, attention_merged, attention_reference};
use mlbench_core::kernels::softmax::softmax_last_dim;

const TOL: f32 = 1e-5;

/// SplitMix64: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn tensor(&mut self, dims: &[usize], amplitude: f32) -> Result<Tensor> {
        let n = dims.iter().product();
        let data: Vec<f32> = (0..n).map(|_| self.f32() * amplitude).collect();
        Tensor::from_vec(data, dims, &Device::Cpu)
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    assert_eq!(a.dims(), b.dims());
    (a - b)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F32)?
        .to_scalar::<f32>()
}

/// Both fused variants against the reference; returns the worst difference.
fn check(q: &Tensor, k: &Tensor, v: &Tensor, causal: Option<usize>) -> Result<f32> {
    let (b, h, tq, _) = q.dims4()?;
    let dv = v.dim(3)?;
    let scale = 1.0 / (q.dim(3)? as f32).sqrt();
    let want = attention_reference(q, k, v, scale, causal)?;
    let got = attention(q, k, v, scale, causal)?;
    let merged = attention_merged(q, k, v, scale, causal)?;
    assert_eq!(got.dims(), &[b, h, tq, dv]);
    assert_eq!(merged.dims(), &[b, tq, h * dv]);
    let unmerged = merged.reshape((b, tq, h, dv))?.transpose(1, 2)?;
    let diff = max_abs_diff(&got, &want)?.max(max_abs_diff(&unmerged, &want)?);
    assert!(
        diff <= TOL,
        "q {:?} k {:?} v {:?} causal {causal:?}: max abs diff {diff}",
        q.dims(),
        k.dims(),
        v.dims()
    );
    Ok(diff)
}

#[allow(clippy::too_many_arguments)]
fn check_shape(
    rng: &mut Rng,
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    dv: usize,
    causal: Option<usize>,
) -> Result<f32> {
    let q = rng.tensor(&[b, h, tq, d], 1.0)?;
    let k = rng.tensor(&[b, h, tk, d], 1.0)?;
    let v = rng.tensor(&[b, h, tk, dv], 1.0)?;
    check(&q, &k, &v, causal)
}

#[test]
fn whisper_shapes() -> Result<()> {
    let mut rng = Rng(1);
    /// (b, h, tq, tk, d, causal offset)
    type Case = (usize, usize, usize, usize, usize, Option<usize>);
    let table: &[Case] = &[
        (1, 6, 1500, 1500, 64, None), // encoder, tiny
        (1, 6, 1, 1, 64, None),       // decoder self-attention, first step
        (1, 6, 1, 7, 64, None),
        (1, 6, 1, 448, 64, None),
        (1, 6, 1, 1500, 64, None),     // cross-attention
        (5, 6, 1, 1500, 64, None),     // beams
        (5, 6, 1, 448, 64, None),      // beams, self-attention
        (1, 6, 5, 5, 64, Some(0)),     // prompt pass, empty cache
        (1, 6, 5, 8, 64, Some(3)),     // prompt pass after 3 cached tokens
        (5, 6, 5, 8, 64, Some(3)),     // the same with beams
        (1, 6, 5, 1500, 64, None),     // prompt pass, cross-attention
        (2, 8, 100, 100, 64, None),    // h = 8
        (1, 8, 130, 130, 64, Some(0)), // causal over several query blocks
        (1, 20, 1, 1500, 64, None),    // large-v3 heads
        (1, 1, 1, 1, 64, None),
        (1, 2, 3, 1, 32, None),      // tk = 1
        (1, 2, 70, 9, 32, None),     // d = 32
        (1, 2, 65, 33, 80, Some(0)), // d = 80
    ];
    for &(b, h, tq, tk, d, causal) in table {
        check_shape(&mut rng, b, h, tq, tk, d, d, causal)?;
    }
    Ok(())
}

#[test]
fn value_dim_may_differ() -> Result<()> {
    let mut rng = Rng(2);
    check_shape(&mut rng, 2, 3, 70, 40, 64, 16, None)?;
    check_shape(&mut rng, 1, 2, 1, 40, 8, 80, Some(5))?;
    Ok(())
}

#[test]
fn long_keys() -> Result<()> {
    // 20000 keys: the per-block score buffer is capped, so the 100 query rows are split into
    // several blocks even with few heads.
    let mut rng = Rng(10);
    check_shape(&mut rng, 1, 2, 100, 20_000, 16, 16, None)?;
    check_shape(&mut rng, 1, 1, 100, 20_000, 16, 16, Some(19_900))?;
    Ok(())
}

#[test]
fn peaky_softmax() -> Result<()> {
    // Large scores: the softmax is nearly one-hot and exp(x - max) underflows for most keys.
    let mut rng = Rng(3);
    let q = rng.tensor(&[1, 4, 80, 64], 30.0)?;
    let k = rng.tensor(&[1, 4, 200, 64], 30.0)?;
    let v = rng.tensor(&[1, 4, 200, 64], 1.0)?;
    check(&q, &k, &v, None)?;
    check(&q, &k, &v, Some(100))?;
    Ok(())
}

#[test]
fn strided_inputs() -> Result<()> {
    let mut rng = Rng(4);
    let (b, h, tq, tk, d) = (2, 6, 70, 90, 64);
    // q as the (b, t, h, d) projection viewed as (b, h, t, d): row stride h * d.
    let q = rng.tensor(&[b, tq, h, d], 1.0)?.transpose(1, 2)?;
    assert!(!q.is_contiguous());
    // k with a non-unit last-dimension stride (a transposed (b, h, d, tk) tensor).
    let k = rng.tensor(&[b, h, d, tk], 1.0)?.transpose(2, 3)?;
    assert_ne!(k.stride()[3], 1);
    // v narrowed out of a fused projection: row stride 2 * d, start offset d.
    let kv = rng.tensor(&[b, h, tk, 2 * d], 1.0)?;
    let v = kv.narrow(3, d, d)?;
    assert!(!v.is_contiguous());
    check(&q, &k, &v, None)?;
    check(&q, &k, &v, Some(20))?;
    // A single query row out of a longer block, and keys of one batch entry broadcast to all
    // beams (batch stride 0).
    let q1 = q.narrow(2, 17, 1)?;
    let k1 = k.i(0..1)?.broadcast_as((b, h, tk, d))?;
    let v1 = v.i(1..2)?.broadcast_as((b, h, tk, d))?;
    check(&q1, &k1, &v1, None)?;
    Ok(())
}

#[test]
fn random_shapes() -> Result<()> {
    let mut rng = Rng(5);
    let mut worst = 0f32;
    for _ in 0..200 {
        let b = rng.range(1, 3);
        let h = rng.range(1, 4);
        let tq = rng.range(1, 150);
        let tk = rng.range(1, 150);
        let d = [1, 3, 8, 16, 31, 32, 64, 80][rng.range(0, 7)];
        let dv = if rng.range(0, 3) == 0 {
            rng.range(1, 70)
        } else {
            d
        };
        let causal = match rng.range(0, 2) {
            0 => None,
            1 => Some(rng.range(0, 5)),
            _ => Some(tk.saturating_sub(tq)),
        };
        worst = worst.max(check_shape(&mut rng, b, h, tq, tk, d, dv, causal)?);
    }
    assert!(worst <= TOL);
    Ok(())
}

#[test]
fn other_dtypes_fall_back_to_candle() -> Result<()> {
    let mut rng = Rng(6);
    let q = rng.tensor(&[1, 2, 5, 16], 1.0)?;
    let k = rng.tensor(&[1, 2, 9, 16], 1.0)?;
    let v = rng.tensor(&[1, 2, 9, 16], 1.0)?;
    let want32 = attention(&q, &k, &v, 0.25, Some(4))?;
    for (dtype, tol) in [(DType::F64, 1e-6), (DType::BF16, 3e-2), (DType::F16, 5e-3)] {
        let (q, k, v) = (q.to_dtype(dtype)?, k.to_dtype(dtype)?, v.to_dtype(dtype)?);
        let got = attention(&q, &k, &v, 0.25, Some(4))?;
        let reference = attention_reference(&q, &k, &v, 0.25, Some(4))?;
        assert_eq!(got.dtype(), dtype);
        assert_eq!(max_abs_diff(&got, &reference)?, 0.0);
        let merged = attention_merged(&q, &k, &v, 0.25, Some(4))?;
        let unmerged = merged.reshape((1, 5, 2, 16))?.transpose(1, 2)?;
        assert_eq!(max_abs_diff(&unmerged, &reference)?, 0.0);
        let diff = max_abs_diff(&got.to_dtype(DType::F32)?, &want32)?;
        assert!(diff < tol, "{dtype:?}: {diff}");
    }
    Ok(())
}

#[test]
fn shape_errors() -> Result<()> {
    let mut rng = Rng(7);
    let q = rng.tensor(&[1, 2, 5, 16], 1.0)?;
    let k = rng.tensor(&[1, 2, 9, 16], 1.0)?;
    let v = rng.tensor(&[1, 2, 9, 16], 1.0)?;
    let bad_d = rng.tensor(&[1, 2, 9, 8], 1.0)?;
    let bad_h = rng.tensor(&[1, 3, 9, 16], 1.0)?;
    let bad_t = rng.tensor(&[1, 2, 8, 16], 1.0)?;
    assert!(attention(&q, &bad_d, &v, 1.0, None).is_err());
    assert!(attention(&q, &bad_h, &v, 1.0, None).is_err());
    assert!(attention(&q, &k, &bad_t, 1.0, None).is_err());
    assert!(attention(&q.i(0)?, &k.i(0)?, &v.i(0)?, 1.0, None).is_err());
    Ok(())
}

#[test]
fn repeated_calls_reuse_scratch() -> Result<()> {
    // The per-thread scratch buffer grows and shrinks in use across calls of different sizes.
    let mut rng = Rng(8);
    for (tq, tk) in [(200, 300), (3, 4), (64, 1000), (1, 2)] {
        check_shape(&mut rng, 1, 3, tq, tk, 64, 64, None)?;
    }
    Ok(())
}

#[test]
fn softmax_matches_candle() -> Result<()> {
    let mut rng = Rng(9);
    let shapes: &[&[usize]] = &[
        &[1, 6, 1500, 1500],
        &[5, 6, 1, 448],
        &[3, 51865],
        &[7],
        &[2, 3, 1],
        &[4, 17],
    ];
    for &dims in shapes {
        let x = rng.tensor(dims, 10.0)?;
        let got = softmax_last_dim(&x)?;
        let want = candle_nn::ops::softmax_last_dim(&x)?;
        let diff = max_abs_diff(&got, &want)?;
        assert!(diff <= 1e-6, "{dims:?}: {diff}");
    }
    // Non-contiguous input and -inf entries (a masked row).
    let x = rng.tensor(&[33, 20], 5.0)?.t()?;
    let diff = max_abs_diff(
        &softmax_last_dim(&x)?,
        &candle_nn::ops::softmax_last_dim(&x.contiguous()?)?,
    )?;
    assert!(diff <= 1e-6);
    let masked = Tensor::new(
        &[[0.5f32, f32::NEG_INFINITY, 2.0, f32::NEG_INFINITY]],
        &Device::Cpu,
    )?;
    let got = softmax_last_dim(&masked)?.to_vec2::<f32>()?;
    assert_eq!(got[0][1], 0.0);
    assert_eq!(got[0][3], 0.0);
    assert!((got[0][0] + got[0][2] - 1.0).abs() < 1e-6);
    // Other dtypes go to Candle.
    let x16 = x.to_dtype(DType::F16)?;
    assert_eq!(
        max_abs_diff(
            &softmax_last_dim(&x16)?,
            &candle_nn::ops::softmax_last_dim(&x16.contiguous()?)?
        )?,
        0.0
    );
    Ok(())
}
