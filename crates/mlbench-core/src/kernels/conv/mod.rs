//! Convolutions for every model of the workbench: conv1d, conv2d (grouped, depthwise, dilated,
//! strided, asymmetric padding) and transposed conv1d/conv2d, as layers that prepare their
//! weights once at load time.
//!
//! Why not `Tensor::conv1d` / `conv2d`: on the CPU, Candle 0.11's convolutions reach a third of
//! what its own matmul does (45–73 GFLOP/s against 150+ on two AVX2 cores), and convolutions
//! are most of the work in HiFi-GAN (VITS), the Stable Diffusion UNet and VAE, EfficientNet and
//! the Whisper stem. On the CPU these layers run the kernels of the `cpu` module instead:
//!
//! - **im2col + gemm** for ordinary and grouped convolutions: the input columns under the
//!   kernel are gathered tile by tile into a per-thread buffer (bounded, reused across calls)
//!   and multiplied by the weight, viewed as (out, in·kh·kw), with the `gemm` crate that
//!   Candle's matmul uses. Tiles of output pixels are the parallel tasks, so gathering runs on
//!   every core too. 1×1 convolutions with stride 1 skip the gather: the input *is* the matrix.
//!   The bias is written into the output before the gemm accumulates onto it.
//! - **direct depthwise kernel** (one input channel per group, as in MobileNet/EfficientNet):
//!   per output plane, a multiply-add of shifted input rows per tap, vectorised by the compiler.
//! - **gemm + col2im** for transposed convolutions: `col = wᵀ x` (the weight is stored
//!   transposed, (out·kh·kw, in) per group, at load), then each output channel sums its taps'
//!   rows into place, channels in parallel.
//!
//! f32 runs as is; f16 and bf16 inputs on the CPU are widened to f32 for the kernel and the
//! result is narrowed back (the weights are widened once, at load), which is faster than
//! Candle's half-precision CPU convolutions and more accurate. On CUDA and Metal every layer
//! forwards to Candle's own kernels ([`Conv2d::forward_reference`] and friends), which the tests
//! also use as the reference on the CPU.

mod cpu;

use candle_core::{CpuStorage, D};
use candle_core::{CustomOp2, DType, Layout, Module, Result, Shape, Tensor};

pub use cpu::Geometry;

/// Zero padding on each side of a 2-D input. TensorFlow's "same" padding puts the odd pixel
/// at the bottom/right, which is why the sides are separate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Padding2d {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Padding2d {
    /// The same padding on all four sides (PyTorch's `padding=p`).
    pub const fn uniform(p: usize) -> Self {
        Self::symmetric(p, p)
    }

    /// `h` rows above and below, `w` columns left and right (PyTorch's `padding=(h, w)`).
    pub const fn symmetric(h: usize, w: usize) -> Self {
        Self {
            top: h,
            bottom: h,
            left: w,
            right: w,
        }
    }

    /// TensorFlow's "SAME" padding for an input of `input` (h, w): the output has
    /// `ceil(input / stride)` pixels per side, the odd padding pixel going bottom/right.
    pub fn same(
        input: (usize, usize),
        kernel: (usize, usize),
        stride: (usize, usize),
        dilation: (usize, usize),
    ) -> Self {
        let side = |n: usize, k: usize, s: usize, d: usize| {
            let out = n.div_ceil(s.max(1));
            let needed =
                ((out.saturating_sub(1)) * s + (k.saturating_sub(1)) * d + 1).saturating_sub(n);
            (needed / 2, needed - needed / 2)
        };
        let (top, bottom) = side(input.0, kernel.0, stride.0, dilation.0);
        let (left, right) = side(input.1, kernel.1, stride.1, dilation.1);
        Self {
            top,
            bottom,
            left,
            right,
        }
    }

    /// (h, w) when top == bottom and left == right.
    fn as_symmetric(&self) -> Option<(usize, usize)> {
        (self.top == self.bottom && self.left == self.right).then_some((self.top, self.left))
    }
}

/// Hyper-parameters of a 2-D convolution, as in PyTorch's `Conv2d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Zero padding per side.
    pub padding: Padding2d,
    /// (h, w) stride.
    pub stride: (usize, usize),
    /// (h, w) dilation.
    pub dilation: (usize, usize),
    /// Channel groups (in and out channels are both split into this many).
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Self {
            padding: Padding2d::default(),
            stride: (1, 1),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// Hyper-parameters of a 1-D convolution, as in PyTorch's `Conv1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dParams {
    /// Zero padding on both ends.
    pub padding: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Channel groups.
    pub groups: usize,
}

impl Default for Conv1dParams {
    fn default() -> Self {
        Self {
            padding: 0,
            stride: 1,
            dilation: 1,
            groups: 1,
        }
    }
}

/// Hyper-parameters of a transposed 2-D convolution, as in PyTorch's `ConvTranspose2d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    /// (h, w) implicit padding removed from the output's borders.
    pub padding: (usize, usize),
    /// (h, w) extra rows/columns added at the bottom/right of the output.
    pub output_padding: (usize, usize),
    /// (h, w) stride (the upsampling factor).
    pub stride: (usize, usize),
    /// (h, w) dilation.
    pub dilation: (usize, usize),
    /// Channel groups.
    pub groups: usize,
}

impl Default for ConvTranspose2dParams {
    fn default() -> Self {
        Self {
            padding: (0, 0),
            output_padding: (0, 0),
            stride: (1, 1),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// Hyper-parameters of a transposed 1-D convolution, as in PyTorch's `ConvTranspose1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose1dParams {
    /// Implicit padding removed from both ends of the output.
    pub padding: usize,
    /// Extra samples added at the end of the output.
    pub output_padding: usize,
    /// Stride (the upsampling factor).
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Channel groups.
    pub groups: usize,
}

impl Default for ConvTranspose1dParams {
    fn default() -> Self {
        Self {
            padding: 0,
            output_padding: 0,
            stride: 1,
            dilation: 1,
            groups: 1,
        }
    }
}

impl From<Conv1dParams> for Conv2dParams {
    fn from(p: Conv1dParams) -> Self {
        Self {
            padding: Padding2d::symmetric(0, p.padding),
            stride: (1, p.stride),
            dilation: (1, p.dilation),
            groups: p.groups,
        }
    }
}

impl From<ConvTranspose1dParams> for ConvTranspose2dParams {
    fn from(p: ConvTranspose1dParams) -> Self {
        Self {
            padding: (0, p.padding),
            output_padding: (0, p.output_padding),
            stride: (1, p.stride),
            dilation: (1, p.dilation),
            groups: p.groups,
        }
    }
}

/// The CPU copy of a layer's weights, in the layout its kernel reads, made once at load.
#[derive(Debug, Clone)]
struct CpuWeights {
    /// f32, contiguous: (cout, cin/groups, kh, kw) for convolutions, (groups, cout/groups·kh·kw,
    /// cin/groups) for transposed ones.
    weight: Tensor,
    bias: Option<Vec<f32>>,
}

impl CpuWeights {
    fn new(packed: Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let bias = bias
            .map(|b| b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>())
            .transpose()?;
        Ok(Self {
            weight: packed.to_dtype(DType::F32)?.contiguous()?,
            bias,
        })
    }
}

fn check_bias(bias: Option<&Tensor>, channels: usize, what: &str) -> Result<()> {
    match bias {
        Some(b) if b.dims() != [channels] => candle_core::bail!(
            "{what}: bias has shape {:?}, expected [{channels}]",
            b.dims()
        ),
        _ => Ok(()),
    }
}

fn check_groups(cin: usize, cout: usize, groups: usize, what: &str) -> Result<()> {
    if groups == 0 || !cin.is_multiple_of(groups) || !cout.is_multiple_of(groups) {
        candle_core::bail!(
            "{what}: {groups} groups do not divide {cin} input and {cout} output channels"
        )
    }
    Ok(())
}

fn check_positive(values: &[usize], what: &str) -> Result<()> {
    if values.contains(&0) {
        candle_core::bail!("{what}: stride and dilation must be at least 1")
    }
    Ok(())
}

fn add_bias(y: Tensor, bias: Option<&Tensor>, rank: usize) -> Result<Tensor> {
    let Some(b) = bias else { return Ok(y) };
    let shape: Vec<usize> = (0..rank)
        .map(|i| if i == 1 { b.elem_count() } else { 1 })
        .collect();
    y.broadcast_add(&b.to_dtype(y.dtype())?.reshape(shape)?)
}

/// A 2-D convolution layer: input (b, cin, h, w), weight (cout, cin/groups, kh, kw).
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    params: Conv2dParams,
    cpu: Option<CpuWeights>,
}

impl Conv2d {
    /// Checks the shapes and prepares the CPU weight layout.
    pub fn new(weight: Tensor, bias: Option<Tensor>, params: Conv2dParams) -> Result<Self> {
        let (cout, cin_g, _, _) = weight.dims4()?;
        check_groups(cin_g * params.groups, cout, params.groups, "conv2d")?;
        check_bias(bias.as_ref(), cout, "conv2d")?;
        let (s, d) = (params.stride, params.dilation);
        check_positive(&[s.0, s.1, d.0, d.1], "conv2d")?;
        let cpu = if weight.device().is_cpu() {
            Some(CpuWeights::new(weight.clone(), bias.as_ref())?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            params,
            cpu,
        })
    }

    /// The weight as given, (cout, cin/groups, kh, kw).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, (cout).
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The hyper-parameters.
    pub fn params(&self) -> &Conv2dParams {
        &self.params
    }

    /// The geometry of this layer on an input of shape (b, cin, h, w).
    pub fn geometry(&self, input: &[usize]) -> Result<Geometry> {
        let [b, cin, h, w] = rank4(input, "conv2d")?;
        let (cout, cin_g, kh, kw) = self.weight.dims4()?;
        if cin != cin_g * self.params.groups {
            candle_core::bail!(
                "conv2d: input has {cin} channels, the weight expects {}",
                cin_g * self.params.groups
            )
        }
        Geometry::conv(
            [b, cin, h, w],
            [cout, kh, kw],
            self.params.groups,
            self.params.stride,
            self.params.dilation,
            self.params.padding,
        )
    }

    /// Candle's own convolution (asymmetric padding applied with `pad_with_zeros`): what runs
    /// on CUDA and Metal, and the tests' reference on the CPU.
    pub fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let p = self.params;
        let (x, pad) = match p.padding.as_symmetric() {
            Some((ph, pw)) if ph == pw => (x.clone(), ph),
            _ => (
                x.pad_with_zeros(2, p.padding.top, p.padding.bottom)?
                    .pad_with_zeros(3, p.padding.left, p.padding.right)?,
                0,
            ),
        };
        let y = if p.stride.0 == p.stride.1 && p.dilation.0 == p.dilation.1 {
            x.conv2d(
                &self.weight.to_dtype(x.dtype())?,
                pad,
                p.stride.0,
                p.dilation.0,
                p.groups,
            )?
        } else {
            candle_core::bail!(
                "conv2d: Candle's kernels need equal h and w stride and dilation, got {:?} and {:?}",
                p.stride,
                p.dilation
            )
        };
        add_bias(y, self.bias.as_ref(), 4)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (Some(cpu), true) = (&self.cpu, x.device().is_cpu()) else {
            return self.forward_reference(x);
        };
        let g = self.geometry(x.dims())?;
        run_cpu(x, cpu, g, Kind::Conv)
    }
}

/// A 1-D convolution layer: input (b, cin, l), weight (cout, cin/groups, k).
#[derive(Debug, Clone)]
pub struct Conv1d {
    weight: Tensor,
    bias: Option<Tensor>,
    params: Conv1dParams,
    cpu: Option<CpuWeights>,
}

impl Conv1d {
    /// Checks the shapes and prepares the CPU weight layout.
    pub fn new(weight: Tensor, bias: Option<Tensor>, params: Conv1dParams) -> Result<Self> {
        let (cout, cin_g, k) = weight.dims3()?;
        check_groups(cin_g * params.groups, cout, params.groups, "conv1d")?;
        check_bias(bias.as_ref(), cout, "conv1d")?;
        check_positive(&[params.stride, params.dilation], "conv1d")?;
        let cpu = if weight.device().is_cpu() {
            Some(CpuWeights::new(
                weight.reshape((cout, cin_g, 1, k))?,
                bias.as_ref(),
            )?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            params,
            cpu,
        })
    }

    /// The weight as given, (cout, cin/groups, k).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, (cout).
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The hyper-parameters.
    pub fn params(&self) -> &Conv1dParams {
        &self.params
    }

    /// The geometry of this layer on an input of shape (b, cin, l), as a 2-D convolution of
    /// height 1.
    pub fn geometry(&self, input: &[usize]) -> Result<Geometry> {
        let [b, cin, l] = rank3(input, "conv1d")?;
        let (cout, cin_g, k) = self.weight.dims3()?;
        if cin != cin_g * self.params.groups {
            candle_core::bail!(
                "conv1d: input has {cin} channels, the weight expects {}",
                cin_g * self.params.groups
            )
        }
        let p = Conv2dParams::from(self.params);
        Geometry::conv(
            [b, cin, 1, l],
            [cout, 1, k],
            p.groups,
            p.stride,
            p.dilation,
            p.padding,
        )
    }

    /// Candle's own conv1d: what runs on CUDA and Metal, and the tests' reference on the CPU.
    pub fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let p = self.params;
        let y = x.conv1d(
            &self.weight.to_dtype(x.dtype())?,
            p.padding,
            p.stride,
            p.dilation,
            p.groups,
        )?;
        add_bias(y, self.bias.as_ref(), 3)
    }
}

impl Module for Conv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (Some(cpu), true) = (&self.cpu, x.device().is_cpu()) else {
            return self.forward_reference(x);
        };
        run_cpu_1d(x, cpu, self.geometry(x.dims())?, Kind::Conv)
    }
}

/// A transposed 2-D convolution layer: input (b, cin, h, w), weight (cin, cout/groups, kh, kw).
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Option<Tensor>,
    params: ConvTranspose2dParams,
    cpu: Option<CpuWeights>,
}

/// (groups, cout/groups·kh·kw, cin/groups): the transposed weight of each group, for the gemm
/// `col = wᵀ x`.
fn pack_transposed(weight: &Tensor, groups: usize) -> Result<Tensor> {
    let (cin, cout_g, kh, kw) = weight.dims4()?;
    weight
        .reshape((groups, cin / groups, cout_g * kh * kw))?
        .transpose(1, 2)?
        .contiguous()
}

impl ConvTranspose2d {
    /// Checks the shapes and prepares the CPU weight layout.
    pub fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        params: ConvTranspose2dParams,
    ) -> Result<Self> {
        let (cin, cout_g, _, _) = weight.dims4()?;
        check_groups(
            cin,
            cout_g * params.groups,
            params.groups,
            "conv_transpose2d",
        )?;
        check_bias(bias.as_ref(), cout_g * params.groups, "conv_transpose2d")?;
        let (s, d) = (params.stride, params.dilation);
        check_positive(&[s.0, s.1, d.0, d.1], "conv_transpose2d")?;
        let cpu = if weight.device().is_cpu() {
            Some(CpuWeights::new(
                pack_transposed(&weight.to_dtype(DType::F32)?, params.groups)?,
                bias.as_ref(),
            )?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            params,
            cpu,
        })
    }

    /// The weight as given, (cin, cout/groups, kh, kw).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The geometry of this layer on an input of shape (b, cin, h, w).
    pub fn geometry(&self, input: &[usize]) -> Result<Geometry> {
        let [b, cin, h, w] = rank4(input, "conv_transpose2d")?;
        let (wcin, cout_g, kh, kw) = self.weight.dims4()?;
        if cin != wcin {
            candle_core::bail!("conv_transpose2d: input has {cin} channels, the weight {wcin}")
        }
        let p = self.params;
        Geometry::transposed(
            [b, cin, h, w],
            [cout_g * p.groups, kh, kw],
            p.groups,
            p.stride,
            p.dilation,
            p.padding,
            p.output_padding,
        )
    }

    /// Candle's own transposed convolution, one call per group: what runs on CUDA and Metal,
    /// and the tests' reference on the CPU.
    pub fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let p = self.params;
        if p.stride.0 != p.stride.1
            || p.dilation.0 != p.dilation.1
            || p.padding.0 != p.padding.1
            || p.output_padding.0 != p.output_padding.1
        {
            candle_core::bail!(
                "conv_transpose2d: Candle's kernels need equal h and w parameters, got {p:?}"
            )
        }
        let weight = self.weight.to_dtype(x.dtype())?;
        let run = |x: &Tensor, w: &Tensor| {
            x.conv_transpose2d(w, p.padding.0, p.output_padding.0, p.stride.0, p.dilation.0)
        };
        let y = if p.groups == 1 {
            run(x, &weight)?
        } else {
            let xs = x.chunk(p.groups, 1)?;
            let ws = weight.chunk(p.groups, 0)?;
            let ys = xs
                .iter()
                .zip(&ws)
                .map(|(x, w)| run(x, w))
                .collect::<Result<Vec<_>>>()?;
            Tensor::cat(&ys, 1)?
        };
        add_bias(y, self.bias.as_ref(), 4)
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (Some(cpu), true) = (&self.cpu, x.device().is_cpu()) else {
            return self.forward_reference(x);
        };
        let g = self.geometry(x.dims())?;
        run_cpu(x, cpu, g, Kind::Transposed)
    }
}

/// A transposed 1-D convolution layer: input (b, cin, l), weight (cin, cout/groups, k).
#[derive(Debug, Clone)]
pub struct ConvTranspose1d {
    weight: Tensor,
    bias: Option<Tensor>,
    params: ConvTranspose1dParams,
    cpu: Option<CpuWeights>,
}

impl ConvTranspose1d {
    /// Checks the shapes and prepares the CPU weight layout.
    pub fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        params: ConvTranspose1dParams,
    ) -> Result<Self> {
        let (cin, cout_g, k) = weight.dims3()?;
        check_groups(
            cin,
            cout_g * params.groups,
            params.groups,
            "conv_transpose1d",
        )?;
        check_bias(bias.as_ref(), cout_g * params.groups, "conv_transpose1d")?;
        check_positive(&[params.stride, params.dilation], "conv_transpose1d")?;
        let cpu = if weight.device().is_cpu() {
            let w4 = weight.to_dtype(DType::F32)?.reshape((cin, cout_g, 1, k))?;
            Some(CpuWeights::new(
                pack_transposed(&w4, params.groups)?,
                bias.as_ref(),
            )?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            params,
            cpu,
        })
    }

    /// The weight as given, (cin, cout/groups, k).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The geometry of this layer on an input of shape (b, cin, l), as a 2-D transposed
    /// convolution of height 1.
    pub fn geometry(&self, input: &[usize]) -> Result<Geometry> {
        let [b, cin, l] = rank3(input, "conv_transpose1d")?;
        let (wcin, cout_g, k) = self.weight.dims3()?;
        if cin != wcin {
            candle_core::bail!("conv_transpose1d: input has {cin} channels, the weight {wcin}")
        }
        let p = ConvTranspose2dParams::from(self.params);
        Geometry::transposed(
            [b, cin, 1, l],
            [cout_g * p.groups, 1, k],
            p.groups,
            p.stride,
            p.dilation,
            p.padding,
            p.output_padding,
        )
    }

    /// Candle's own transposed conv1d: what runs on CUDA and Metal, and the tests' reference
    /// on the CPU.
    pub fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let p = self.params;
        let y = x.conv_transpose1d(
            &self.weight.to_dtype(x.dtype())?,
            p.padding,
            p.output_padding,
            p.stride,
            p.dilation,
            p.groups,
        )?;
        add_bias(y, self.bias.as_ref(), 3)
    }
}

impl Module for ConvTranspose1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (Some(cpu), true) = (&self.cpu, x.device().is_cpu()) else {
            return self.forward_reference(x);
        };
        run_cpu_1d(x, cpu, self.geometry(x.dims())?, Kind::Transposed)
    }
}

fn rank4(dims: &[usize], what: &str) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(dims).map_err(|_| {
        candle_core::Error::Msg(format!("{what}: expected (b, c, h, w), got {dims:?}"))
    })
}

fn rank3(dims: &[usize], what: &str) -> Result<[usize; 3]> {
    <[usize; 3]>::try_from(dims)
        .map_err(|_| candle_core::Error::Msg(format!("{what}: expected (b, c, l), got {dims:?}")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Conv,
    Transposed,
}

/// Runs the CPU kernel on `x` (b, cin, h, w) in f32, returning the input's dtype.
fn run_cpu(x: &Tensor, weights: &CpuWeights, geometry: Geometry, kind: Kind) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?.contiguous()?;
    let op = CpuConv {
        geometry,
        kind,
        bias: weights.bias.as_deref(),
    };
    let y = x.apply_op2_no_bwd(&weights.weight, &op)?;
    debug_assert_eq!(y.dim(D::Minus1)?, geometry.ow);
    y.to_dtype(dtype)
}

/// [`run_cpu`] on `x` (b, cin, l), as a 2-D input of height 1.
fn run_cpu_1d(x: &Tensor, weights: &CpuWeights, geometry: Geometry, kind: Kind) -> Result<Tensor> {
    let (b, c, l) = x.dims3()?;
    run_cpu(&x.reshape((b, c, 1, l))?, weights, geometry, kind)?.squeeze(2)
}

struct CpuConv<'a> {
    geometry: Geometry,
    kind: Kind,
    bias: Option<&'a [f32]>,
}

impl CustomOp2 for CpuConv<'_> {
    fn name(&self) -> &'static str {
        "mlbench-conv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(xs), CpuStorage::F32(ws)) = (s1, s2) else {
            candle_core::bail!("{}: expected f32 storage", self.name())
        };
        let g = &self.geometry;
        let x = contiguous(xs, l1, g.b * g.cin * g.h * g.w, self.name())?;
        let w_len = g.cout * (g.cin / g.groups) * g.kh * g.kw;
        let w = contiguous(ws, l2, w_len, self.name())?;
        let out = match self.kind {
            Kind::Conv => cpu::conv(x, w, self.bias, g),
            Kind::Transposed => cpu::conv_transpose(x, w, self.bias, g),
        };
        Ok((CpuStorage::F32(out), (g.b, g.cout, g.oh, g.ow).into()))
    }
}

/// The `len` elements of a contiguous layout, checked.
fn contiguous<'a>(data: &'a [f32], layout: &Layout, len: usize, what: &str) -> Result<&'a [f32]> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end - start == len && end <= data.len() => Ok(&data[start..end]),
        _ => candle_core::bail!(
            "{what}: expected a contiguous tensor of {len} elements, got {layout:?}"
        ),
    }
}
