//! Element-wise work fused and done in place on CPU f32: bias + activation after a matmul, and
//! residual adds. Candle runs each of these as a separate op that allocates its output and
//! hands chunks to a spinning thread pool; here each is one pass over memory the matmul just
//! wrote, split over rayon's pool only when large. Other devices and dtypes use Candle's ops.

use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Result, Tensor};
use rayon::prelude::*;

use crate::activation::Activation;

/// Below this many elements one thread does the whole pass.
const PAR_MIN: usize = 32 * 1024;

/// `act(y + bias)`, `y` (rows, n) fresh from a matmul (overwritten on CPU f32), `bias` (n).
pub(crate) fn bias_act(
    y: Tensor,
    bias: Option<&Tensor>,
    act: Option<Activation>,
) -> Result<Tensor> {
    let fast = y.device().is_cpu()
        && y.dtype() == DType::F32
        && y.is_contiguous()
        && act.is_none_or(|a| a == Activation::Gelu);
    match bias {
        Some(b) if fast => {
            y.inplace_op2(
                &b.contiguous()?,
                &BiasAct {
                    gelu: act.is_some(),
                },
            )?;
            Ok(y)
        }
        _ => {
            let y = match bias {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            };
            match act {
                Some(a) => a.forward(&y),
                None => Ok(y),
            }
        }
    }
}

/// `y + r`, reusing `y`'s memory on CPU f32 (`y` must be a fresh, unshared result).
pub(crate) fn add_into(y: Tensor, r: &Tensor) -> Result<Tensor> {
    if y.device().is_cpu() && y.dtype() == DType::F32 && y.is_contiguous() && y.shape() == r.shape()
    {
        y.inplace_op2(&r.contiguous()?, &AddInto)?;
        Ok(y)
    } else {
        y + r
    }
}

fn f32_slices<'a>(
    s1: &'a mut CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
    name: &str,
) -> Result<(&'a mut [f32], &'a [f32])> {
    let (CpuStorage::F32(a), CpuStorage::F32(b)) = (s1, s2) else {
        candle_core::bail!("{name}: expected f32 storage")
    };
    let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
    else {
        candle_core::bail!("{name}: expected contiguous tensors")
    };
    Ok((&mut a[a0..a1], &b[b0..b1]))
}

struct BiasAct {
    gelu: bool,
}

impl InplaceOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "mlbench-bias-act"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (y, b) = f32_slices(s1, l1, s2, l2, self.name())?;
        let n = b.len();
        if n == 0 || y.len() % n != 0 {
            candle_core::bail!("{}: bias of {n} for {} values", self.name(), y.len());
        }
        let gelu = self.gelu;
        let row = |r: &mut [f32]| {
            for (v, &bv) in r.iter_mut().zip(b) {
                let x = *v + bv;
                *v = if gelu { gelu_erf(x) } else { x };
            }
        };
        if y.len() >= PAR_MIN {
            let rows_per_task = (PAR_MIN / n).max(1);
            y.par_chunks_mut(rows_per_task * n)
                .for_each(|c| c.chunks_mut(n).for_each(row));
        } else {
            y.chunks_mut(n).for_each(row);
        }
        Ok(())
    }
}

struct AddInto;

impl InplaceOp2 for AddInto {
    fn name(&self) -> &'static str {
        "mlbench-add-into"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (y, r) = f32_slices(s1, l1, s2, l2, self.name())?;
        if y.len() != r.len() {
            candle_core::bail!("{}: {} and {} values", self.name(), y.len(), r.len());
        }
        if y.len() >= PAR_MIN {
            y.par_chunks_mut(PAR_MIN)
                .zip(r.par_chunks(PAR_MIN))
                .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(x, y)| *x += y));
        } else {
            y.iter_mut().zip(r).for_each(|(x, y)| *x += y);
        }
        Ok(())
    }
}

/// `x · Φ(x) = x/2 · (1 + erf(x/√2))`, with [`erf`].
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf with an absolute error below 2e-7: Abramowitz & Stegun 7.1.26 in the form
/// `1 − t·P(t)·e^(−x²)`, `t = 1/(1 + p|x|)`, with [`exp`] inlined so the loop vectorises.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp(-ax * ax);
    y.copysign(x)
}

/// e^x for x ≤ 0 (relative error ~2e-7): `2^n · e^r` with `r = x − n ln 2`, `|r| ≤ ln2/2`,
/// e^r by a degree-6 Taylor polynomial; underflows to 0 below −87.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = x - n * std::f32::consts::LN_2;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_gelu_matches_the_exact_one() {
        let xs: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.003).collect();
        let t = Tensor::new(xs.as_slice(), &candle_core::Device::Cpu).unwrap();
        let want = t.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        for (x, w) in xs.iter().zip(want) {
            assert!(
                (gelu_erf(*x) - w).abs() < 4e-7 * x.abs().max(1.0),
                "{x}: {} vs {w}",
                gelu_erf(*x)
            );
        }
        assert_eq!(gelu_erf(-100.0), 0.0);
        assert_eq!(gelu_erf(100.0), 100.0);
    }

    #[test]
    fn fused_ops_equal_candle_ops() {
        let dev = candle_core::Device::Cpu;
        let y = Tensor::randn(0f32, 1.0, (300, 200), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 200, &dev).unwrap();
        let want = y.broadcast_add(&b).unwrap().gelu_erf().unwrap();
        let got = bias_act(y.copy().unwrap(), Some(&b), Some(Activation::Gelu)).unwrap();
        let d = (got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-6, "{d}");
        let sum = add_into(y.copy().unwrap(), &want).unwrap();
        let d = (sum - (&y + &want).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
    }
}
