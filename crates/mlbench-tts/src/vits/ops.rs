//! Fused CPU element-wise ops for HiFi-GAN, whose activations are its largest tensors: one
//! parallel pass and no extra allocation where Candle's ops would take two passes and a fresh
//! buffer each. Other devices and dtypes use Candle's ops.

use candle_core::{CpuStorage, DType, Layout, Tensor};
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

/// `max(x, slope·x)` for 0 < slope < 1.
pub fn leaky_relu(x: &Tensor, slope: f64) -> candle_core::Result<Tensor> {
    scaled_leaky_relu(x, 1.0, slope)
}

/// `leaky_relu(scale·x, slope)` for scale > 0: one parallel pass over contiguous f32 CPU
/// tensors (HiFi-GAN's activations are its largest tensors), generic ops elsewhere.
pub fn scaled_leaky_relu(x: &Tensor, scale: f64, slope: f64) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return x.contiguous()?.apply_op1_no_bwd(&LeakyRelu {
            scale: scale as f32,
            slope: slope as f32,
        });
    }
    let x = if scale == 1.0 {
        x.clone()
    } else {
        (x * scale)?
    };
    x.maximum(&(&x * slope)?)
}

struct LeakyRelu {
    scale: f32,
    slope: f32,
}

impl candle_core::CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "scaled-leaky-relu"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, candle_core::Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("scaled-leaky-relu: f32 only")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("scaled-leaky-relu: contiguous input only")
        };
        let src = &data[start..end];
        let mut out = vec![0f32; src.len()];
        let (a, b) = (self.scale, self.scale * self.slope);
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, s)| {
                for (o, &v) in o.iter_mut().zip(s) {
                    *o = if v > 0.0 { a * v } else { b * v };
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// `dst + src`, computed in place in `dst`'s buffer on the CPU. `dst` must own its storage
/// alone (a freshly computed tensor, no views of it alive).
pub fn add_into(dst: Tensor, src: &Tensor) -> candle_core::Result<Tensor> {
    let fast = dst.device().is_cpu()
        && dst.dtype() == DType::F32
        && src.dtype() == DType::F32
        && dst.dims() == src.dims()
        && dst.is_contiguous()
        && src.is_contiguous();
    if !fast {
        return dst + src;
    }
    dst.inplace_op2(src, &AddInPlace)?;
    Ok(dst)
}

struct AddInPlace;

impl candle_core::InplaceOp2 for AddInPlace {
    fn name(&self) -> &'static str {
        "add-in-place"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(d), CpuStorage::F32(s)) = (s1, s2) else {
            candle_core::bail!("add-in-place: f32 only")
        };
        let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("add-in-place: contiguous inputs only")
        };
        if a1 - a0 != b1 - b0 {
            candle_core::bail!("add-in-place: sizes differ")
        }
        d[a0..a1]
            .par_chunks_mut(CHUNK)
            .zip(s[b0..b1].par_chunks(CHUNK))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d += s));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn fused_ops_match_candle() {
        let x = Tensor::randn(0f32, 1.0, (2, 3, 40_000), &Device::Cpu).unwrap();
        let y = Tensor::randn(0f32, 1.0, (2, 3, 40_000), &Device::Cpu).unwrap();
        let want = (&x * (1.0 / 3.0)).unwrap();
        let want = want.maximum(&(&want * 0.1).unwrap()).unwrap();
        let got = scaled_leaky_relu(&x, 1.0 / 3.0, 0.1).unwrap();
        let d = (got - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);

        let want = (&x + &y).unwrap();
        let fresh = (&x * 1.0).unwrap();
        let got = add_into(fresh, &y).unwrap();
        let d = (got - want).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
        // A non-contiguous operand takes Candle's path.
        let got = add_into(x.t().unwrap(), &y.t().unwrap()).unwrap();
        let want = (x.t().unwrap() + y.t().unwrap()).unwrap();
        let d = (got - want).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
    }
}
