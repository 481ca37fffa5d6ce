//! The conv layers against three references: PyTorch goldens (tests/golden/conv.safetensors,
//! from scripts/reference/conv_goldens.py), Candle's own kernels over a table of the project's
//! model shapes and edge cases, and a direct f64 loop over random shapes (property test).

use std::path::PathBuf;

use candle_core::{DType, Device, Module, Result, Tensor};
use mlbench_core::kernels::conv::{
    Conv1d, Conv1dParams, Conv2d, Conv2dParams, ConvTranspose1d, ConvTranspose1dParams,
    ConvTranspose2d, ConvTranspose2dParams, Padding2d,
};

const TOL: f32 = 1e-4;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Largest |value|, to turn absolute differences into relative ones for big reductions.
fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// PyTorch goldens

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/conv.safetensors")
}

/// The `cases` JSON of the golden file's metadata.
fn golden_cases() -> serde_json::Map<String, serde_json::Value> {
    let bytes = std::fs::read(golden_path()).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let cases = header["__metadata__"]["cases"].as_str().unwrap();
    serde_json::from_str(cases).unwrap()
}

/// `v` as (h, w): a number means both.
fn pair(v: &serde_json::Value) -> (usize, usize) {
    match v {
        serde_json::Value::Array(a) => (
            a[0].as_u64().unwrap() as usize,
            a[1].as_u64().unwrap() as usize,
        ),
        n => {
            let n = n.as_u64().unwrap() as usize;
            (n, n)
        }
    }
}

fn golden_layer(case: &serde_json::Value, w: Tensor, b: Tensor) -> Box<dyn Module> {
    let groups = case["groups"].as_u64().unwrap() as usize;
    let (stride, dilation) = (pair(&case["stride"]), pair(&case["dilation"]));
    let out_pad = pair(&case["output_padding"]);
    match case["op"].as_str().unwrap() {
        "conv1d" => Box::new(
            Conv1d::new(
                w,
                Some(b),
                Conv1dParams {
                    padding: pair(&case["padding"]).0,
                    stride: stride.0,
                    dilation: dilation.0,
                    groups,
                },
            )
            .unwrap(),
        ),
        "conv2d" => {
            let padding = match &case["padding"] {
                serde_json::Value::Array(a) if a.len() == 4 => {
                    let p: Vec<usize> = a.iter().map(|v| v.as_u64().unwrap() as usize).collect();
                    Padding2d {
                        top: p[0],
                        bottom: p[1],
                        left: p[2],
                        right: p[3],
                    }
                }
                v => {
                    let (h, w) = pair(v);
                    Padding2d::symmetric(h, w)
                }
            };
            let params = Conv2dParams {
                padding,
                stride,
                dilation,
                groups,
            };
            Box::new(Conv2d::new(w, Some(b), params).unwrap())
        }
        "conv_transpose1d" => Box::new(
            ConvTranspose1d::new(
                w,
                Some(b),
                ConvTranspose1dParams {
                    padding: pair(&case["padding"]).0,
                    output_padding: out_pad.0,
                    stride: stride.0,
                    dilation: dilation.0,
                    groups,
                },
            )
            .unwrap(),
        ),
        "conv_transpose2d" => Box::new(
            ConvTranspose2d::new(
                w,
                Some(b),
                ConvTranspose2dParams {
                    padding: pair(&case["padding"]),
                    output_padding: out_pad,
                    stride,
                    dilation,
                    groups,
                },
            )
            .unwrap(),
        ),
        op => panic!("unknown op {op}"),
    }
}

#[test]
fn matches_pytorch_goldens() {
    let tensors = candle_core::safetensors::load(golden_path(), &Device::Cpu).unwrap();
    let cases = golden_cases();
    assert_eq!(cases.len(), 10, "golden cases");
    for (name, case) in &cases {
        let get = |k: &str| tensors[&format!("{name}.{k}")].clone();
        let layer = golden_layer(case, get("w"), get("b"));
        let y = layer.forward(&get("x")).unwrap();
        let diff = max_abs_diff(&y, &get("y"));
        assert!(diff < TOL, "{name}: max abs diff {diff} vs PyTorch");
    }
}

// ---------------------------------------------------------------------------------------------
// Candle's kernels over the model shapes and edge cases

/// `y` equals the reference `r` within TOL relative to r's largest value (at least 1).
fn assert_matches(y: &Tensor, r: &Tensor, what: &str) {
    let diff = max_abs_diff(y, r) / max_abs(r).max(1.0);
    assert!(diff < TOL, "{what}: relative diff {diff}");
}

fn check_conv1d(rng: &mut Rng, x: &[usize], w: &[usize], params: Conv1dParams, what: &str) {
    let layer = Conv1d::new(rng.tensor(w), Some(rng.tensor(&[w[0]])), params).unwrap();
    let x = rng.tensor(x);
    assert_matches(
        &layer.forward(&x).unwrap(),
        &layer.forward_reference(&x).unwrap(),
        what,
    );
}

fn check_conv2d(rng: &mut Rng, x: &[usize], w: &[usize], params: Conv2dParams, what: &str) {
    let layer = Conv2d::new(rng.tensor(w), Some(rng.tensor(&[w[0]])), params).unwrap();
    let x = rng.tensor(x);
    assert_matches(
        &layer.forward(&x).unwrap(),
        &layer.forward_reference(&x).unwrap(),
        what,
    );
}

fn c1(padding: usize, stride: usize, dilation: usize, groups: usize) -> Conv1dParams {
    Conv1dParams {
        padding,
        stride,
        dilation,
        groups,
    }
}

fn c2(padding: usize, stride: usize, dilation: usize, groups: usize) -> Conv2dParams {
    Conv2dParams {
        padding: Padding2d::uniform(padding),
        stride: (stride, stride),
        dilation: (dilation, dilation),
        groups,
    }
}

#[test]
fn conv1d_matches_candle_on_model_shapes() {
    let mut rng = Rng(1);
    let cases: &[(&[usize], &[usize], Conv1dParams, &str)] = &[
        (
            &[1, 80, 3000],
            &[384, 80, 3],
            c1(1, 1, 1, 1),
            "whisper tiny conv1",
        ),
        (
            &[1, 384, 3000],
            &[384, 384, 3],
            c1(1, 2, 1, 1),
            "whisper tiny conv2",
        ),
        (
            &[1, 128, 600],
            &[512, 128, 3],
            c1(1, 1, 1, 1),
            "whisper v3 conv1 (128 mels)",
        ),
        (
            &[1, 192, 120],
            &[512, 192, 7],
            c1(3, 1, 1, 1),
            "hifi-gan conv_pre",
        ),
        (
            &[1, 128, 900],
            &[128, 128, 11],
            c1(15, 1, 3, 1),
            "hifi-gan resblock k11 d3",
        ),
        (
            &[1, 64, 1500],
            &[64, 64, 7],
            c1(15, 1, 5, 1),
            "hifi-gan resblock k7 d5",
        ),
        (
            &[1, 32, 4000],
            &[1, 32, 7],
            c1(3, 1, 1, 1),
            "hifi-gan conv_post",
        ),
        (
            &[1, 192, 80],
            &[384, 192, 5],
            c1(2, 1, 1, 1),
            "vits wavenet in_layer",
        ),
        (
            &[1, 192, 80],
            &[192, 1, 3],
            c1(9, 1, 9, 192),
            "vits dds conv (depthwise, dilated)",
        ),
        (
            &[3, 16, 20],
            &[8, 16, 1],
            c1(0, 1, 1, 1),
            "kernel 1, batch 3",
        ),
        (
            &[1, 4, 3],
            &[5, 4, 7],
            c1(3, 1, 1, 1),
            "kernel longer than input",
        ),
        (&[2, 6, 17], &[4, 6, 2], c1(1, 3, 1, 1), "stride > kernel"),
        (&[1, 8, 33], &[12, 4, 3], c1(1, 1, 1, 2), "two groups"),
        (&[1, 5, 1], &[5, 5, 1], c1(0, 1, 1, 1), "length 1"),
    ];
    for (x, w, p, what) in cases {
        check_conv1d(&mut rng, x, w, *p, what);
    }
}

#[test]
fn conv2d_matches_candle_on_model_shapes() {
    let mut rng = Rng(2);
    let cases: &[(&[usize], &[usize], Conv2dParams, &str)] = &[
        (
            &[2, 320, 16, 16],
            &[320, 320, 3, 3],
            c2(1, 1, 1, 1),
            "sd unet 3x3 (small latent)",
        ),
        (
            &[1, 320, 16, 16],
            &[320, 320, 3, 3],
            c2(1, 2, 1, 1),
            "sd unet downsample",
        ),
        (
            &[2, 320, 16, 16],
            &[640, 320, 1, 1],
            c2(0, 1, 1, 1),
            "sd unet 1x1 shortcut",
        ),
        (
            &[1, 4, 32, 32],
            &[128, 4, 3, 3],
            c2(1, 1, 1, 1),
            "sd vae conv_in (small)",
        ),
        (
            &[1, 128, 32, 32],
            &[3, 128, 3, 3],
            c2(1, 1, 1, 1),
            "sd vae conv_out (small)",
        ),
        (
            &[1, 32, 56, 56],
            &[32, 1, 3, 3],
            c2(1, 1, 1, 32),
            "efficientnet depthwise 3x3",
        ),
        (
            &[1, 40, 28, 28],
            &[40, 1, 5, 5],
            c2(2, 2, 1, 40),
            "efficientnet depthwise 5x5 s2",
        ),
        (
            &[1, 16, 28, 28],
            &[96, 16, 1, 1],
            c2(0, 1, 1, 1),
            "efficientnet expand 1x1",
        ),
        (
            &[1, 3, 64, 64],
            &[64, 3, 7, 7],
            c2(3, 2, 1, 1),
            "resnet stem 7x7 s2",
        ),
        (
            &[1, 96, 14, 14],
            &[96, 1, 7, 7],
            c2(3, 1, 1, 96),
            "convnext depthwise 7x7",
        ),
        (
            &[1, 3, 64, 64],
            &[192, 3, 16, 16],
            c2(0, 16, 1, 1),
            "vit patch embed",
        ),
        (
            &[2, 8, 9, 9],
            &[16, 8, 1, 1],
            c2(0, 1, 1, 1),
            "kernel 1, batch 2",
        ),
        (
            &[1, 4, 2, 2],
            &[3, 4, 5, 5],
            c2(2, 1, 1, 1),
            "kernel larger than input",
        ),
        (
            &[1, 3, 10, 10],
            &[4, 3, 2, 2],
            c2(0, 3, 1, 1),
            "stride > kernel",
        ),
        (
            &[2, 6, 10, 10],
            &[12, 1, 3, 3],
            c2(1, 1, 1, 6),
            "depthwise multiplier 2",
        ),
        (
            &[1, 8, 12, 12],
            &[8, 4, 3, 3],
            c2(2, 1, 2, 2),
            "groups 2, dilation 2",
        ),
    ];
    for (x, w, p, what) in cases {
        check_conv2d(&mut rng, x, w, *p, what);
    }
}

#[test]
fn transposed_convs_match_candle() {
    let mut rng = Rng(3);
    let t1 = |padding, output_padding, stride, dilation, groups| ConvTranspose1dParams {
        padding,
        output_padding,
        stride,
        dilation,
        groups,
    };
    let cases1: &[(&[usize], &[usize], ConvTranspose1dParams, &str)] = &[
        (
            &[1, 512, 40],
            &[512, 256, 16],
            t1(4, 0, 8, 1, 1),
            "hifi-gan up x8",
        ),
        (
            &[1, 128, 300],
            &[128, 64, 4],
            t1(1, 0, 2, 1, 1),
            "hifi-gan up x2",
        ),
        (
            &[2, 6, 9],
            &[6, 4, 3],
            t1(1, 1, 2, 1, 1),
            "output padding, batch 2",
        ),
        (
            &[1, 8, 7],
            &[8, 3, 3],
            t1(2, 0, 1, 2, 2),
            "groups 2, dilation 2",
        ),
        (&[1, 4, 5], &[4, 2, 2], t1(0, 0, 3, 1, 1), "stride > kernel"),
    ];
    for (x, w, p, what) in cases1 {
        let cout = w[1] * p.groups;
        let layer = ConvTranspose1d::new(rng.tensor(w), Some(rng.tensor(&[cout])), *p).unwrap();
        let x = rng.tensor(x);
        assert_matches(
            &layer.forward(&x).unwrap(),
            &layer.forward_reference(&x).unwrap(),
            what,
        );
    }
    let t2 = |padding, output_padding, stride, groups| ConvTranspose2dParams {
        padding: (padding, padding),
        output_padding: (output_padding, output_padding),
        stride: (stride, stride),
        dilation: (1, 1),
        groups,
    };
    let cases2: &[(&[usize], &[usize], ConvTranspose2dParams, &str)] = &[
        (
            &[1, 64, 16, 16],
            &[64, 32, 4, 4],
            t2(1, 0, 2, 1),
            "upsample x2, kernel 4",
        ),
        (
            &[2, 8, 5, 7],
            &[8, 6, 3, 3],
            t2(1, 1, 2, 1),
            "output padding, batch 2",
        ),
        (&[1, 6, 5, 5], &[6, 2, 3, 3], t2(0, 0, 1, 3), "groups 3"),
        (
            &[1, 3, 4, 4],
            &[3, 5, 2, 2],
            t2(0, 0, 2, 1),
            "kernel = stride",
        ),
    ];
    for (x, w, p, what) in cases2 {
        let cout = w[1] * p.groups;
        let layer = ConvTranspose2d::new(rng.tensor(w), Some(rng.tensor(&[cout])), *p).unwrap();
        let x = rng.tensor(x);
        assert_matches(
            &layer.forward(&x).unwrap(),
            &layer.forward_reference(&x).unwrap(),
            what,
        );
    }
}

#[test]
fn non_contiguous_input_is_read_correctly() {
    let mut rng = Rng(4);
    let layer = Conv2d::new(rng.tensor(&[6, 5, 3, 3]), None, c2(1, 1, 1, 1)).unwrap();
    // (1, 5, 9, 7) as a transposed view of (1, 5, 7, 9).
    let x = rng.tensor(&[1, 5, 7, 9]).transpose(2, 3).unwrap();
    assert!(!x.is_contiguous());
    let diff = max_abs_diff(
        &layer.forward(&x).unwrap(),
        &layer.forward_reference(&x.contiguous().unwrap()).unwrap(),
    );
    assert!(diff < TOL, "strided input: {diff}");
    let layer = Conv1d::new(rng.tensor(&[4, 6, 3]), None, c1(1, 1, 1, 1)).unwrap();
    let x = rng.tensor(&[1, 11, 6]).transpose(1, 2).unwrap();
    let diff = max_abs_diff(
        &layer.forward(&x).unwrap(),
        &layer.forward_reference(&x.contiguous().unwrap()).unwrap(),
    );
    assert!(diff < TOL, "strided 1-d input: {diff}");
}

#[test]
fn half_precision_inputs_match_f32() {
    let mut rng = Rng(5);
    let (w, b, x) = (
        rng.tensor(&[16, 8, 3, 3]),
        rng.tensor(&[16]),
        rng.tensor(&[1, 8, 10, 10]),
    );
    let f32_layer = Conv2d::new(w.clone(), Some(b.clone()), c2(1, 1, 1, 1)).unwrap();
    let want = f32_layer.forward(&x).unwrap();
    for dtype in [DType::F16, DType::BF16] {
        let layer = Conv2d::new(
            w.to_dtype(dtype).unwrap(),
            Some(b.to_dtype(dtype).unwrap()),
            c2(1, 1, 1, 1),
        )
        .unwrap();
        let y = layer.forward(&x.to_dtype(dtype).unwrap()).unwrap();
        assert_eq!(y.dtype(), dtype);
        let diff = max_abs_diff(&y, &want) / max_abs(&want);
        assert!(diff < 2e-2, "{dtype:?}: relative diff {diff}");
    }
}

// ---------------------------------------------------------------------------------------------
// Property test: random shapes against a direct f64 loop (covers what Candle cannot express:
// asymmetric padding, different h/w strides and dilations, groups on transposed conv2d).

/// Direct convolution in f64: the definition, term by term.
fn direct_conv2d(x: &Tensor, w: &Tensor, b: &Tensor, p: &Conv2dParams) -> Vec<f64> {
    let (n, cin, h, wd) = x.dims4().unwrap();
    let (cout, cin_g, kh, kw) = w.dims4().unwrap();
    let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let ws: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
    let bs: Vec<f32> = b.to_vec1().unwrap();
    let pad = p.padding;
    let oh = (h + pad.top + pad.bottom - (kh - 1) * p.dilation.0 - 1) / p.stride.0 + 1;
    let ow = (wd + pad.left + pad.right - (kw - 1) * p.dilation.1 - 1) / p.stride.1 + 1;
    let cout_g = cout / p.groups;
    let mut out = Vec::with_capacity(n * cout * oh * ow);
    for bi in 0..n {
        for co in 0..cout {
            let g = co / cout_g;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bs[co] as f64;
                    for ci in 0..cin_g {
                        let c = g * cin_g + ci;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * p.stride.0 + ky * p.dilation.0) as isize
                                    - pad.top as isize;
                                let ix = (ox * p.stride.1 + kx * p.dilation.1) as isize
                                    - pad.left as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xv = xs[((bi * cin + c) * h + iy as usize) * wd + ix as usize];
                                let wv = ws[((co * cin_g + ci) * kh + ky) * kw + kx];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    out
}

/// Direct transposed convolution in f64 (scatter form, as PyTorch defines it).
fn direct_conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    p: &ConvTranspose2dParams,
) -> (Vec<f64>, [usize; 4]) {
    let (n, cin, h, wd) = x.dims4().unwrap();
    let (_, cout_g, kh, kw) = w.dims4().unwrap();
    let cout = cout_g * p.groups;
    let cin_g = cin / p.groups;
    let oh =
        (h - 1) * p.stride.0 + (kh - 1) * p.dilation.0 + p.output_padding.0 + 1 - 2 * p.padding.0;
    let ow =
        (wd - 1) * p.stride.1 + (kw - 1) * p.dilation.1 + p.output_padding.1 + 1 - 2 * p.padding.1;
    let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let ws: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
    let bs: Vec<f32> = b.to_vec1().unwrap();
    let mut out = vec![0f64; n * cout * oh * ow];
    for bi in 0..n {
        for co in 0..cout {
            for o in 0..oh * ow {
                out[(bi * cout + co) * oh * ow + o] = bs[co] as f64;
            }
        }
        for ci in 0..cin {
            let g = ci / cin_g;
            for iy in 0..h {
                for ix in 0..wd {
                    let xv = xs[((bi * cin + ci) * h + iy) * wd + ix] as f64;
                    for cog in 0..cout_g {
                        let co = g * cout_g + cog;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let oy = (iy * p.stride.0 + ky * p.dilation.0) as isize
                                    - p.padding.0 as isize;
                                let ox = (ix * p.stride.1 + kx * p.dilation.1) as isize
                                    - p.padding.1 as isize;
                                if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                    continue;
                                }
                                let wv = ws[((ci * cout_g + cog) * kh + ky) * kw + kx] as f64;
                                out[((bi * cout + co) * oh + oy as usize) * ow + ox as usize] +=
                                    xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    (out, [n, cout, oh, ow])
}

fn assert_close_f64(y: &Tensor, want: &[f64], what: &str) {
    let ys: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(ys.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1f64, |m, v| m.max(v.abs()));
    let diff = ys
        .iter()
        .zip(want)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
    assert!(
        diff / scale < TOL as f64,
        "{what}: relative diff {}",
        diff / scale
    );
}

#[test]
fn random_conv2d_shapes_match_the_definition() -> Result<()> {
    let mut rng = Rng(0x5eed);
    for case in 0..300 {
        let groups = [1, 1, 2, 3][rng.range(0, 3)];
        let depthwise = rng.range(0, 4) == 0;
        let (cin, cout) = if depthwise {
            let c = rng.range(1, 6);
            (c, c * rng.range(1, 2))
        } else {
            (groups * rng.range(1, 4), groups * rng.range(1, 4))
        };
        let groups = if depthwise { cin } else { groups };
        let (kh, kw) = (rng.range(1, 5), rng.range(1, 5));
        let stride = (rng.range(1, 3), rng.range(1, 3));
        let dilation = (rng.range(1, 3), rng.range(1, 3));
        let padding = Padding2d {
            top: rng.range(0, 3),
            bottom: rng.range(0, 3),
            left: rng.range(0, 3),
            right: rng.range(0, 3),
        };
        let min_h = ((kh - 1) * dilation.0 + 1).saturating_sub(padding.top + padding.bottom);
        let min_w = ((kw - 1) * dilation.1 + 1).saturating_sub(padding.left + padding.right);
        let (h, w) = (
            rng.range(min_h.max(1), min_h.max(12)),
            rng.range(min_w.max(1), min_w.max(12)),
        );
        let batch = rng.range(1, 2);
        let params = Conv2dParams {
            padding,
            stride,
            dilation,
            groups,
        };
        let (wt, b, x) = (
            rng.tensor(&[cout, cin / groups, kh, kw]),
            rng.tensor(&[cout]),
            rng.tensor(&[batch, cin, h, w]),
        );
        let layer = Conv2d::new(wt.clone(), Some(b.clone()), params)?;
        let want = direct_conv2d(&x, &wt, &b, &params);
        let what = format!("case {case}: x {:?} w {:?} {params:?}", x.dims(), wt.dims());
        assert_close_f64(&layer.forward(&x)?, &want, &what);
    }
    Ok(())
}

#[test]
fn random_transposed_shapes_match_the_definition() -> Result<()> {
    let mut rng = Rng(0xfeed);
    for case in 0..200 {
        let groups = rng.range(1, 3);
        let (cin, cout) = (groups * rng.range(1, 3), groups * rng.range(1, 3));
        let (kh, kw) = (rng.range(1, 5), rng.range(1, 5));
        let stride = (rng.range(1, 4), rng.range(1, 4));
        let dilation = (rng.range(1, 2), rng.range(1, 2));
        let (h, w) = (rng.range(1, 7), rng.range(1, 7));
        let full_h = (h - 1) * stride.0 + (kh - 1) * dilation.0 + 1;
        let full_w = (w - 1) * stride.1 + (kw - 1) * dilation.1 + 1;
        let padding = (
            rng.range(0, (full_h - 1) / 2).min(2),
            rng.range(0, (full_w - 1) / 2).min(2),
        );
        // PyTorch requires output_padding < stride or < dilation.
        let output_padding = (
            rng.range(0, stride.0.max(dilation.0) - 1),
            rng.range(0, stride.1.max(dilation.1) - 1),
        );
        let params = ConvTranspose2dParams {
            padding,
            output_padding,
            stride,
            dilation,
            groups,
        };
        let batch = rng.range(1, 2);
        let (wt, b, x) = (
            rng.tensor(&[cin, cout / groups, kh, kw]),
            rng.tensor(&[cout]),
            rng.tensor(&[batch, cin, h, w]),
        );
        let layer = ConvTranspose2d::new(wt.clone(), Some(b.clone()), params)?;
        let (want, shape) = direct_conv_transpose2d(&x, &wt, &b, &params);
        let y = layer.forward(&x)?;
        let what = format!("case {case}: x {:?} w {:?} {params:?}", x.dims(), wt.dims());
        assert_eq!(y.dims(), shape, "{what}");
        assert_close_f64(&y, &want, &what);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bad shapes are errors, not panics.

#[test]
fn mismatched_shapes_are_errors() {
    let mut rng = Rng(6);
    let layer = Conv2d::new(rng.tensor(&[4, 3, 3, 3]), None, c2(0, 1, 1, 1)).unwrap();
    let err = layer.forward(&rng.tensor(&[1, 5, 8, 8])).unwrap_err();
    assert!(err.to_string().contains("channels"), "{err}");
    let err = layer.forward(&rng.tensor(&[1, 3, 2, 2])).unwrap_err();
    assert!(err.to_string().contains("larger"), "{err}");
    let err = Conv2d::new(rng.tensor(&[5, 3, 3, 3]), None, c2(0, 1, 1, 2)).unwrap_err();
    assert!(err.to_string().contains("groups"), "{err}");
    let err = Conv1d::new(
        rng.tensor(&[4, 3, 3]),
        Some(rng.tensor(&[5])),
        c1(0, 1, 1, 1),
    )
    .unwrap_err();
    assert!(err.to_string().contains("bias"), "{err}");
    let err = Conv2d::new(rng.tensor(&[4, 3, 3, 3]), None, c2(0, 0, 1, 1)).unwrap_err();
    assert!(err.to_string().contains("stride"), "{err}");
}

#[test]
fn tf_same_padding_gives_ceil_output() {
    let p = Padding2d::same((15, 224), (3, 3), (2, 2), (1, 1));
    assert_eq!((p.top, p.bottom, p.left, p.right), (1, 1, 0, 1));
    let p = Padding2d::same((14, 14), (5, 5), (1, 1), (1, 1));
    assert_eq!((p.top, p.bottom, p.left, p.right), (2, 2, 2, 2));
}

#[test]
fn random_transposed_1d_shapes_match_candle() -> Result<()> {
    let mut rng = Rng(0xbeef);
    for case in 0..200 {
        let groups = rng.range(1, 2);
        let (cin, cout) = (groups * rng.range(1, 4), groups * rng.range(1, 4));
        let k = rng.range(1, 17);
        let stride = rng.range(1, 9);
        let dilation = if rng.range(0, 3) == 0 { 2 } else { 1 };
        let l = rng.range(1, 20);
        let full = (l - 1) * stride + (k - 1) * dilation + 1;
        let padding = rng.range(0, (full - 1) / 2).min(k);
        let output_padding = rng.range(0, stride.max(dilation) - 1);
        let params = ConvTranspose1dParams {
            padding,
            output_padding,
            stride,
            dilation,
            groups,
        };
        let batch = rng.range(1, 2);
        let (w, b, x) = (
            rng.tensor(&[cin, cout / groups, k]),
            rng.tensor(&[cout]),
            rng.tensor(&[batch, cin, l]),
        );
        let layer = ConvTranspose1d::new(w, Some(b), params)?;
        let what = format!("case {case}: x {:?} {params:?}", x.dims());
        assert_matches(&layer.forward(&x)?, &layer.forward_reference(&x)?, &what);
    }
    Ok(())
}
