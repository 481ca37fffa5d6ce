//! Each scheduler's timesteps, input scaling, steps and img2img noising against diffusers, on the
//! configs in tests/data/diffusion-schedulers/ (scripts/reference/diffusion_goldens.py tiny).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use mlbench_diffusion::config::read_json;
use mlbench_diffusion::schedulers::{Scheduler, SchedulerConfig, SchedulerKind};

const STEPS: usize = 5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        root().join("tests/golden/diffusion-tiny-sd.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

/// Max abs difference relative to the golden's largest magnitude (at least 1): late DDIM steps
/// reach values in the hundreds, where f32 rounding alone is 1e-5.
fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let max = |t: &Tensor| -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    max(&(a - b).unwrap()) / max(b).max(1.0)
}

fn vec(t: &Tensor) -> Vec<f64> {
    t.to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Runs the golden case `name` with sampler `kind`.
fn check(name: &str, kind: SchedulerKind) {
    let g = golden();
    let config: SchedulerConfig =
        read_json(&root().join(format!("tests/data/diffusion-schedulers/{name}.json"))).unwrap();
    let mut s = Scheduler::new(kind, &config, STEPS).unwrap();
    let want = vec(&g[&format!("sched.{name}.timesteps")]);
    assert_eq!(s.timesteps().len(), want.len(), "{name}");
    for (a, b) in s.timesteps().iter().zip(&want) {
        assert!(
            (a - b).abs() < 1e-3,
            "{name}: timesteps {:?} vs {want:?}",
            s.timesteps()
        );
    }
    let sigma = vec(&g[&format!("sched.{name}.init_noise_sigma")])[0];
    assert!(
        (s.init_noise_sigma() - sigma).abs() < 1e-4 * sigma,
        "{name}: init sigma"
    );
    let mut sample = g["sched.sample"].clone();
    for i in 0..STEPS {
        let scaled = s.scale_model_input(&sample, i).unwrap();
        let d = max_diff(&scaled, &g[&format!("sched.{name}.scaled.{i}")]);
        assert!(d < 1e-4, "{name}: scaled input {i} differs by {d}");
        let noise = g[&format!("sched.noise.{i}")].clone();
        let out = &g[&format!("sched.model_output.{i}")];
        sample = s.step(out, i, &sample, Some(&noise)).unwrap();
        let want = &g[&format!("sched.{name}.prev.{i}")];
        let d = max_diff(&sample, want);
        assert!(d < 1e-4, "{name}: step {i} differs by {d}");
    }
    // img2img at strength 0.6: the last 3 timesteps, noised at the first of them.
    let s = Scheduler::new(kind, &config, STEPS).unwrap();
    let tail = vec(&g[&format!("sched.{name}.img2img_timesteps")]);
    let start = STEPS - tail.len();
    for (a, b) in s.timesteps()[start..].iter().zip(&tail) {
        assert!((a - b).abs() < 1e-3, "{name}: img2img timesteps");
    }
    let noised = s
        .add_noise(&g["sched.sample"], &g["sched.noise.0"], start)
        .unwrap();
    let d = max_diff(&noised, &g[&format!("sched.{name}.add_noise")]);
    assert!(d < 1e-4, "{name}: add_noise differs by {d}");
}

#[test]
fn ddim() {
    check("ddim", SchedulerKind::Ddim);
    check("ddim_v_trailing", SchedulerKind::Ddim);
    check("ddim_linear_spacing", SchedulerKind::Ddim);
}

#[test]
fn euler() {
    check("euler", SchedulerKind::Euler);
    check("euler_v_trailing", SchedulerKind::Euler);
    check("euler_karras_linspace", SchedulerKind::EulerKarras);
}

#[test]
fn euler_ancestral() {
    check("euler_ancestral", SchedulerKind::EulerAncestral);
}

#[test]
fn dpmpp_2m() {
    check("dpmpp_2m", SchedulerKind::DpmPp2m);
    check("dpmpp_2m_karras", SchedulerKind::DpmPp2mKarras);
    check("dpmpp_2m_v", SchedulerKind::DpmPp2m);
}

#[test]
fn lcm() {
    check("lcm", SchedulerKind::Lcm);
}

#[test]
fn names_parse_and_unknown_is_an_error() {
    for kind in SchedulerKind::ALL {
        assert_eq!(kind.name().parse::<SchedulerKind>().unwrap(), kind);
    }
    assert_eq!(
        "DPM++ 2M Karras".parse::<SchedulerKind>().unwrap(),
        SchedulerKind::DpmPp2mKarras
    );
    let err = "heun2".parse::<SchedulerKind>().unwrap_err().to_string();
    assert!(
        err.contains("unknown scheduler \"heun2\"") && err.contains("dpmpp_2m"),
        "{err}"
    );
    let config = SchedulerConfig::default();
    let err = Scheduler::new(SchedulerKind::Euler, &config, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--steps"), "{err}");
}
