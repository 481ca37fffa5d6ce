//! One UNet step at 512×512 with classifier-free guidance (latents 2×4×64×64, text 2×77×768)
//! and one VAE decode of 1×4×64×64 latents, SD 1.5 architecture with random weights. Run with RAYON_NUM_THREADS=2 to compare with
//! `scripts/reference/diffusion_goldens.py bench` (PyTorch, 2 threads).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use mlbench_diffusion::unet::UNet;
use mlbench_diffusion::vae::Vae;

const SD15_UNET: &str = r#"{
  "block_out_channels": [320, 640, 1280, 1280],
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  "cross_attention_dim": 768, "attention_head_dim": 8, "layers_per_block": 2, "sample_size": 64
}"#;

const SD15_VAE: &str = r#"{
  "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4,
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
}"#;

fn main() -> mlbench_diffusion::Result<()> {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let unet = UNet::load(serde_json::from_str(SD15_UNET).expect("config"), vb)?;
    // Random (not constant) weights, as PyTorch's default initialisation gives its side.
    for var in varmap.all_vars() {
        let (mean, std) = if var.rank() == 1 {
            (0f32, 0.01f32)
        } else {
            (0f32, 0.02f32)
        };
        var.set(&Tensor::randn(mean, std, var.shape(), &device)?)?;
    }
    let latents = Tensor::randn(0f32, 1., (2, 4, 64, 64), &device)?;
    let text = Tensor::randn(0f32, 1., (2, 77, 768), &device)?;
    unet.forward(&latents, 500.0, &text)?;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        unet.forward(&latents, 500.0, &text)?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!("mlbench (our UNet blocks, mlbench-core conv + attention kernels): one UNet step 2x4x64x64: {best:.2} s (best of 3)");
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let vae = Vae::load(serde_json::from_str(SD15_VAE).expect("config"), vb)?;
    for var in varmap.all_vars() {
        var.set(&Tensor::randn(0f32, 0.02f32, var.shape(), &device)?)?;
    }
    let z = Tensor::randn(0f32, 1., (1, 4, 64, 64), &device)?;
    vae.decode(&z)?;
    let t0 = Instant::now();
    vae.decode(&z)?;
    println!(
        "mlbench: one VAE decode 1x4x64x64 -> 512x512: {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
