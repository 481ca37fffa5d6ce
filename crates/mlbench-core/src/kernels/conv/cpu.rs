//! The f32 CPU kernels behind the conv layers: im2col + gemm, direct depthwise, and
//! gemm + col2im for transposed convolutions. Everything is NCHW; 1-D convolutions are 2-D
//! ones of height 1. See the [parent module](super) for why.

use candle_core::Result;
use gemm::Parallelism;
use rayon::prelude::*;

use super::Padding2d;
use crate::kernels::shared::{with_scratch, OutPtr};

/// Every size of one convolution call, checked: input (b, cin, h, w), output (b, cout, oh, ow),
/// kernel (kh, kw). For transposed convolutions `padding` is the symmetric padding removed
/// from the output (top = bottom, left = right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Batch.
    pub b: usize,
    /// Input channels.
    pub cin: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Channel groups.
    pub groups: usize,
    /// (h, w) stride.
    pub stride: (usize, usize),
    /// (h, w) dilation.
    pub dilation: (usize, usize),
    /// Zero padding per side.
    pub padding: Padding2d,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// A transposed convolution (input pixels scatter into the output).
    pub transposed: bool,
}

impl Geometry {
    /// A convolution of input `[b, cin, h, w]` with `[cout, kh, kw]` kernels.
    pub fn conv(
        [b, cin, h, w]: [usize; 4],
        [cout, kh, kw]: [usize; 3],
        groups: usize,
        stride: (usize, usize),
        dilation: (usize, usize),
        padding: Padding2d,
    ) -> Result<Self> {
        let out = |n: usize, before: usize, after: usize, k: usize, s: usize, d: usize| {
            let span = (k.saturating_sub(1)) * d + 1;
            (n + before + after)
                .checked_sub(span)
                .map(|v| v / s + 1)
                .filter(|_| k > 0)
        };
        let oh = out(h, padding.top, padding.bottom, kh, stride.0, dilation.0);
        let ow = out(w, padding.left, padding.right, kw, stride.1, dilation.1);
        let (Some(oh), Some(ow)) = (oh, ow) else {
            candle_core::bail!(
                "conv: the {kh}x{kw} kernel (dilation {dilation:?}) is larger than the padded \
                 {h}x{w} input (padding {padding:?})"
            )
        };
        Ok(Self {
            b,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            groups,
            stride,
            dilation,
            padding,
            oh,
            ow,
            transposed: false,
        })
    }

    /// A transposed convolution of input `[b, cin, h, w]` with `[cout, kh, kw]` kernels.
    pub fn transposed(
        [b, cin, h, w]: [usize; 4],
        [cout, kh, kw]: [usize; 3],
        groups: usize,
        stride: (usize, usize),
        dilation: (usize, usize),
        padding: (usize, usize),
        output_padding: (usize, usize),
    ) -> Result<Self> {
        let out = |n: usize, k: usize, s: usize, d: usize, p: usize, op: usize| {
            ((n.max(1) - 1) * s + (k.max(1) - 1) * d + op + 1).checked_sub(2 * p)
        };
        let oh = out(h, kh, stride.0, dilation.0, padding.0, output_padding.0);
        let ow = out(w, kw, stride.1, dilation.1, padding.1, output_padding.1);
        let (Some(oh), Some(ow)) = (oh, ow) else {
            candle_core::bail!(
                "conv_transpose: padding {padding:?} removes the whole {h}x{w} output"
            )
        };
        if oh == 0 || ow == 0 || h == 0 || w == 0 || kh == 0 || kw == 0 {
            candle_core::bail!("conv_transpose: empty input, kernel or output")
        }
        Ok(Self {
            b,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            groups,
            stride,
            dilation,
            padding: Padding2d::symmetric(padding.0, padding.1),
            oh,
            ow,
            transposed: true,
        })
    }

    /// Floating-point operations of one call: 2 per multiply-add.
    pub fn flops(&self) -> f64 {
        let pixels = if self.transposed {
            self.h * self.w
        } else {
            self.oh * self.ow
        };
        let macs = if self.transposed {
            self.b * self.cin * pixels * self.cout_g() * self.taps()
        } else {
            self.b * self.cout * pixels * self.cin_g() * self.taps()
        };
        2.0 * macs as f64
    }

    fn cin_g(&self) -> usize {
        self.cin / self.groups
    }

    fn cout_g(&self) -> usize {
        self.cout / self.groups
    }

    fn taps(&self) -> usize {
        self.kh * self.kw
    }

    fn in_plane(&self) -> usize {
        self.h * self.w
    }

    fn out_plane(&self) -> usize {
        self.oh * self.ow
    }
}

/// Largest gathered tile (floats): 16 MB per thread, so that memory stays bounded for the SD
/// VAE's 512×512 layers (whose full im2col matrix would be 1.2 GB).
const MAX_TILE_ELEMS: usize = 1 << 22;

/// Largest `col` tile of a transposed convolution (floats, 4 MB): it is written by the gemm and
/// read back by col2im, so it should stay in the caches.
const MAX_COL_ELEMS: usize = 1 << 20;

/// Most output pixels per tile once a weight row is at least this long. The gemm repacks the
/// weight for every tile, so wider tiles amortise that, until the tile no longer fits the
/// caches: 512 measured best on the SD VAE and UNet shapes (5–10 % over 227–910 pixels, 33 %
/// on the 3-channel output conv); short rows (EfficientNet's stem and 1×1 convs) do better with
/// the tiles that the thread count alone sets.
const MAX_TILE_COLS: usize = 512;

/// Fewest output pixels per tile: below this the gemm repacks the weight for too little work.
const MIN_TILE: usize = 128;

/// Accumulator floats per depthwise row block (8 KB, well inside L1).
const DEPTHWISE_BLOCK: usize = 2048;

/// Fewest output channels per block when channels are split across threads.
const MIN_ROW_BLOCK: usize = 16;

/// Tasks per thread to aim for, so that uneven tiles still balance.
const TASKS_PER_THREAD: usize = 4;

/// Below this many multiply-adds (about 20 µs of work) a call runs on the calling thread:
/// waking the pool costs more.
const MIN_PARALLEL_MACS: usize = 1 << 20;

/// Output with every channel plane set to its bias (or zero).
fn output_with_bias(g: &Geometry, bias: Option<&[f32]>) -> Vec<f32> {
    let plane = g.out_plane();
    match bias {
        None => vec![0f32; g.b * g.cout * plane],
        Some(bias) => {
            let mut out = Vec::with_capacity(g.b * g.cout * plane);
            for _ in 0..g.b {
                for &v in bias {
                    out.extend(std::iter::repeat_n(v, plane));
                }
            }
            out
        }
    }
}

/// Convolution: `x` (b, cin, h, w) and `w` (cout, cin/groups, kh, kw), both contiguous.
pub(super) fn conv(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
    assert_eq!(x.len(), g.b * g.cin * g.in_plane(), "conv: input length");
    assert_eq!(
        w.len(),
        g.cout * g.cin_g() * g.taps(),
        "conv: weight length"
    );
    let mut out = output_with_bias(g, bias);
    if g.cin_g() == 1 && g.cout_g() >= 1 && g.groups > 1 {
        depthwise(x, w, g, &mut out);
    } else {
        im2col_gemm(x, w, g, bias.is_some(), &mut out);
    }
    out
}

/// im2col + gemm, parallel over tiles of output pixels of each (batch, group), and over
/// blocks of output channels when there are too few tiles to feed every thread.
fn im2col_gemm(x: &[f32], w: &[f32], g: &Geometry, accumulate: bool, out: &mut [f32]) {
    let (m, k, p) = (g.cout_g(), g.cin_g() * g.taps(), g.out_plane());
    let pointwise = g.kh == 1
        && g.kw == 1
        && g.stride == (1, 1)
        && g.padding == Padding2d::default()
        && p == g.in_plane();
    let units = g.b * g.groups;
    let threads = rayon::current_num_threads();
    let macs = units * m * k * p;
    let parallel = threads > 1 && macs >= MIN_PARALLEL_MACS;
    // Tiles: small enough to bound the gather buffer, many enough to feed every thread,
    // large enough for the gemm to amortise packing the weight.
    let max_cols = if k >= MAX_TILE_COLS {
        MAX_TILE_COLS
    } else {
        usize::MAX
    };
    let mut tiles = p.div_ceil((MAX_TILE_ELEMS / k.max(1)).clamp(MIN_TILE, max_cols));
    if parallel {
        tiles = tiles.max((TASKS_PER_THREAD * threads).div_ceil(units));
    }
    let tiles = tiles.min(p.div_ceil(MIN_TILE)).max(1);
    let tile = p.div_ceil(tiles);
    let tiles = p.div_ceil(tile);
    // Small images (late CNN stages, short sequences): split the output channels instead.
    // Each block gathers the same tile again, which costs little next to its gemm.
    let row_blocks = if parallel && units * tiles < 2 * threads {
        (2 * threads)
            .div_ceil(units * tiles)
            .min(m.div_ceil(MIN_ROW_BLOCK))
    } else {
        1
    };
    let rows = m.div_ceil(row_blocks).next_multiple_of(8).min(m);
    let row_blocks = m.div_ceil(rows);
    let tasks = units * tiles * row_blocks;
    let out_ptr = OutPtr(out.as_mut_ptr());
    let task = |t: usize| {
        let (unit, rest) = (t / (tiles * row_blocks), t % (tiles * row_blocks));
        let (ti, rb) = (rest / row_blocks, rest % row_blocks);
        let (bi, gi) = (unit / g.groups, unit % g.groups);
        let p0 = ti * tile;
        let n = tile.min(p - p0);
        let r0 = rb * rows;
        let mr = rows.min(m - r0);
        let x_g = &x[(bi * g.cin + gi * g.cin_g()) * g.in_plane()..][..g.cin_g() * g.in_plane()];
        let w_rows = &w[(gi * m + r0) * k..][..mr * k];
        let dst_offset = (bi * g.cout + gi * m + r0) * p + p0;
        // SAFETY: task (unit, tile, row block) writes output channels gi·m+r0..gi·m+r0+mr of
        // batch bi, columns p0..p0+n only: disjoint from every other task's elements, all
        // inside `out` (dst_offset + (mr-1)·p + n ≤ b·cout·p). `x_g`, `w_rows` and the scratch
        // are live slices of the sizes the gemm reads (k×n with row stride n or p), and none
        // overlaps `out`.
        unsafe {
            let dst = out_ptr.get().add(dst_offset);
            if pointwise {
                gemm_f32(
                    [mr, n, k],
                    (dst, p as isize),
                    (w_rows.as_ptr(), k as isize),
                    (x_g.as_ptr().add(p0), p as isize),
                    accumulate,
                );
            } else {
                with_scratch(k * n, |col| {
                    im2col(x_g, g, p0, n, col);
                    gemm_f32(
                        [mr, n, k],
                        (dst, p as isize),
                        (w_rows.as_ptr(), k as isize),
                        (col.as_ptr(), n as isize),
                        accumulate,
                    );
                });
            }
        }
    };
    if parallel && tasks > 1 {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
}

/// Gathers output pixels `p0..p0 + n` of one group's input `x_g` (cin/groups, h, w) into
/// `col` (cin/groups·kh·kw rows of `n`), row (c, ky, kx) matching the weight's layout.
fn im2col(x_g: &[f32], g: &Geometry, p0: usize, n: usize, col: &mut [f32]) {
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    for (r, row) in col.chunks_exact_mut(n).enumerate() {
        let (c, tap) = (r / g.taps(), r % g.taps());
        let (ky, kx) = (tap / g.kw, tap % g.kw);
        let plane = &x_g[c * g.in_plane()..][..g.in_plane()];
        let col_offset = (kx * dw) as isize - g.padding.left as isize;
        let (mut j, mut pos) = (0, p0);
        while j < n {
            let (oy, ox0) = (pos / g.ow, pos % g.ow);
            let len = (g.ow - ox0).min(n - j);
            let seg = &mut row[j..j + len];
            let iy = (oy * sh + ky * dh) as isize - g.padding.top as isize;
            if iy < 0 || iy >= g.h as isize {
                seg.fill(0.0);
            } else {
                let in_row = &plane[iy as usize * g.w..][..g.w];
                gather_row(seg, in_row, ox0, sw, col_offset);
            }
            j += len;
            pos += len;
        }
    }
}

/// The output columns `first..first + len` whose input column `ox·stride + offset` lies inside
/// a row of `width`, as a range of `0..len`.
fn valid_columns(
    first: usize,
    len: usize,
    stride: usize,
    offset: isize,
    width: usize,
) -> (usize, usize) {
    // First output column whose input column is >= 0.
    let lo = if offset >= 0 {
        0
    } else {
        offset.unsigned_abs().div_ceil(stride)
    };
    // One past the last output column whose input column is < width.
    let last_in = width as isize - 1 - offset;
    let hi = if last_in < 0 {
        0
    } else {
        last_in as usize / stride + 1
    };
    let lo = lo.saturating_sub(first).min(len);
    let hi = hi.saturating_sub(first).clamp(lo, len);
    (lo, hi)
}

/// `seg[i] = in_row[(first + i)·stride + offset]`, zero outside the row.
fn gather_row(seg: &mut [f32], in_row: &[f32], first: usize, stride: usize, offset: isize) {
    let (lo, hi) = valid_columns(first, seg.len(), stride, offset, in_row.len());
    seg[..lo].fill(0.0);
    seg[hi..].fill(0.0);
    if lo == hi {
        return;
    }
    let start = ((first + lo) * stride) as isize + offset;
    let start = start as usize;
    if stride == 1 {
        seg[lo..hi].copy_from_slice(&in_row[start..start + (hi - lo)]);
    } else if stride == 2 {
        // Pairs, so that the compiler can vectorise with shuffles; the last sample alone (its
        // pair may run past the row).
        let last = hi - 1;
        let pairs = &in_row[start..start + 2 * (last - lo)];
        for (dst, pair) in seg[lo..last].iter_mut().zip(pairs.chunks_exact(2)) {
            *dst = pair[0];
        }
        seg[last] = in_row[start + 2 * (last - lo)];
    } else {
        for (dst, src) in seg[lo..hi]
            .iter_mut()
            .zip(in_row[start..].iter().step_by(stride))
        {
            *dst = *src;
        }
    }
}

/// Depthwise convolution (one input channel per group, any number of outputs per channel):
/// per output plane, shifted input rows times one tap each, accumulated in place.
fn depthwise(x: &[f32], w: &[f32], g: &Geometry, out: &mut [f32]) {
    let mult = g.cout_g();
    let plane_out = g.out_plane();
    let macs = g.b * g.cout * plane_out * g.taps();
    let run = |(i, plane): (usize, &mut [f32])| {
        let (bi, co) = (i / g.cout, i % g.cout);
        let ci = co / mult;
        let input = &x[(bi * g.cin + ci) * g.in_plane()..][..g.in_plane()];
        let taps = &w[co * g.taps()..][..g.taps()];
        depthwise_plane(input, taps, g, plane);
    };
    if macs >= MIN_PARALLEL_MACS {
        out.par_chunks_mut(plane_out).enumerate().for_each(run);
    } else {
        out.chunks_mut(plane_out).enumerate().for_each(run);
    }
}

/// One output plane of a depthwise convolution, as one long vectorised multiply-add per tap.
///
/// The zero-padded input plane is split into stride phases, `phase[(r % sh, c % sw)]` holding
/// padded pixel (r, c) at (r / sh, c / sw), all phases `cols = ceil(padded width / sw)` wide.
/// Output pixel (oy, ox) of tap (ky, kx) then reads its phase at
/// (oy + ky·dh / sh, ox + kx·dw / sw): for every output row the same offset. So an
/// accumulator laid out `oh × cols` (the columns past `ow` are junk, dropped at the end) takes
/// each tap as one contiguous run of `oh · cols` multiply-adds over the phase, instead of `oh`
/// short rows with their own bounds.
fn depthwise_plane(input: &[f32], taps: &[f32], g: &Geometry, plane: &mut [f32]) {
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    let pad = g.padding;
    let rows = (g.h + pad.top + pad.bottom).div_ceil(sh);
    let cols = (g.w + pad.left + pad.right).div_ceil(sw);
    // One spare row per phase: the junk columns of the last output row read past its end.
    let phase_len = (rows + 1) * cols;
    let acc_len = g.oh * cols;
    with_scratch(sh * sw * phase_len + acc_len, |buf| {
        let (phases, acc) = buf.split_at_mut(sh * sw * phase_len);
        phases.fill(0.0);
        acc.fill(0.0);
        for (y, in_row) in input.chunks_exact(g.w).enumerate() {
            let r = y + pad.top;
            let (phase_y, row) = (r % sh, r / sh);
            let at = |phase_x: usize, x: usize| {
                (phase_y * sw + phase_x) * phase_len + row * cols + (x + pad.left) / sw
            };
            if sw == 1 {
                let at = at(0, 0);
                phases[at..at + g.w].copy_from_slice(in_row);
            } else if sw == 2 {
                // Even and odd input columns, deinterleaved in one pass over the row.
                let (even, odd) = (at(pad.left % 2, 0), at((pad.left + 1) % 2, 1));
                let pairs = in_row.chunks_exact(2);
                if let [last] = pairs.remainder() {
                    phases[even + g.w / 2] = *last;
                }
                for (i, pair) in pairs.enumerate() {
                    phases[even + i] = pair[0];
                    phases[odd + i] = pair[1];
                }
            } else {
                for (x, &v) in in_row.iter().enumerate() {
                    phases[at((x + pad.left) % sw, x)] = v;
                }
            }
        }
        // Blocks of output rows, so that the accumulator block stays in L1 across the taps.
        let block_rows = (DEPTHWISE_BLOCK / cols).max(1);
        for (bi, acc) in acc.chunks_mut(block_rows * cols).enumerate() {
            let base = bi * block_rows * cols;
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let tap = taps[ky * g.kw + kx];
                    let (ry, rx) = (ky * dh, kx * dw);
                    let phase = (ry % sh) * sw + rx % sw;
                    let start = phase * phase_len + (ry / sh) * cols + rx / sw + base;
                    let len = acc.len();
                    for (a, v) in acc.iter_mut().zip(&phases[start..start + len]) {
                        *a += tap * v;
                    }
                }
            }
        }
        for (out_row, acc_row) in plane.chunks_exact_mut(g.ow).zip(acc.chunks_exact(cols)) {
            for (o, a) in out_row.iter_mut().zip(acc_row) {
                *o += a;
            }
        }
    });
}

/// Transposed convolution: `x` (b, cin, h, w) and `w` packed as
/// (groups, cout/groups·kh·kw, cin/groups), both contiguous.
pub(super) fn conv_transpose(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
    assert_eq!(
        x.len(),
        g.b * g.cin * g.in_plane(),
        "conv_transpose: input length"
    );
    assert_eq!(
        w.len(),
        g.cout * g.cin_g() * g.taps(),
        "conv_transpose: weight length"
    );
    let mut out = output_with_bias(g, bias);
    let (m, k, q) = (g.cout_g() * g.taps(), g.cin_g(), g.in_plane());
    let threads = rayon::current_num_threads();
    let parallel = threads > 1 && g.b * g.groups * m * k * q >= MIN_PARALLEL_MACS;
    // The gemm's output rows are split into blocks, one per task.
    let rows = if parallel {
        m.div_ceil(TASKS_PER_THREAD * threads)
            .next_multiple_of(8)
            .clamp(MIN_ROW_BLOCK, m.max(1))
    } else {
        m.max(1)
    };
    let tile = (MAX_COL_ELEMS / m.max(1)).max(MIN_TILE).min(q);
    let mut col = vec![0f32; m * tile];
    for bi in 0..g.b {
        for gi in 0..g.groups {
            let x_g = &x[(bi * g.cin + gi * k) * q..][..k * q];
            let w_g = &w[gi * m * k..][..m * k];
            let out_g = &mut out[(bi * g.cout + gi * g.cout_g()) * g.out_plane()..]
                [..g.cout_g() * g.out_plane()];
            for q0 in (0..q).step_by(tile) {
                let n = tile.min(q - q0);
                let col = &mut col[..m * n];
                let block = |(i, dst): (usize, &mut [f32])| {
                    let mr = dst.len() / n;
                    // SAFETY: `dst` is this task's exclusive mr×n block of `col`; the weight rows
                    // i·rows..i·rows+mr of `w_g` (row stride k) and the input columns
                    // q0..q0+n of `x_g` (k rows of stride q) are live slices covering every
                    // element the gemm reads, and neither overlaps `col`.
                    unsafe {
                        gemm_f32(
                            [mr, n, k],
                            (dst.as_mut_ptr(), n as isize),
                            (w_g[i * rows * k..].as_ptr(), k as isize),
                            (x_g.as_ptr().add(q0), q as isize),
                            false,
                        );
                    }
                };
                if parallel {
                    col.par_chunks_mut(rows * n).enumerate().for_each(block);
                } else {
                    col.chunks_mut(rows * n).enumerate().for_each(block);
                }
                col2im(col, g, q0, n, out_g, parallel);
            }
        }
    }
    out
}

/// Adds the taps in `col` (cout/groups·kh·kw rows of `n` input pixels starting at `q0`) into
/// their output pixels, one output channel per task.
fn col2im(col: &[f32], g: &Geometry, q0: usize, n: usize, out_g: &mut [f32], parallel: bool) {
    let run = |(co, plane): (usize, &mut [f32])| {
        for tap in 0..g.taps() {
            let (ky, kx) = (tap / g.kw, tap % g.kw);
            let row = &col[(co * g.taps() + tap) * n..][..n];
            scatter_tap(row, g, q0, ky, kx, plane);
        }
    };
    if parallel {
        out_g
            .par_chunks_mut(g.out_plane())
            .enumerate()
            .for_each(run);
    } else {
        out_g.chunks_mut(g.out_plane()).enumerate().for_each(run);
    }
}

/// `plane[iy·sh + ky·dh - ph][ix·sw + kx·dw - pw] += row[j]` for input pixel q0 + j = (iy, ix).
fn scatter_tap(row: &[f32], g: &Geometry, q0: usize, ky: usize, kx: usize, plane: &mut [f32]) {
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    let (mut j, mut pos) = (0, q0);
    while j < row.len() {
        let (iy, ix0) = (pos / g.w, pos % g.w);
        let len = (g.w - ix0).min(row.len() - j);
        let oy = (iy * sh + ky * dh) as isize - g.padding.top as isize;
        if oy >= 0 && oy < g.oh as isize {
            let out_row = &mut plane[oy as usize * g.ow..][..g.ow];
            // Output column of input column ix: ix·sw + offset.
            let offset = (kx * dw) as isize - g.padding.left as isize;
            let (lo, hi) = valid_columns(ix0, len, sw, offset, g.ow);
            let src = &row[j + lo..j + hi];
            if !src.is_empty() {
                let start = (((ix0 + lo) * sw) as isize + offset) as usize;
                if sw == 1 {
                    for (o, v) in out_row[start..].iter_mut().zip(src) {
                        *o += v;
                    }
                } else {
                    for (o, v) in out_row[start..].iter_mut().step_by(sw).zip(src) {
                        *o += v;
                    }
                }
            }
        }
        j += len;
        pos += len;
    }
}

/// `dst (m×n, row stride dst_rs) (+)= lhs (m×k) · rhs (k×n)`, every matrix given as
/// (pointer, row stride) with unit column stride: one call of the `gemm` crate.
///
/// # Safety
/// Every element the shapes and strides address must be in bounds of a live allocation,
/// `dst`'s elements must not be accessed by anyone else during the call, and `dst` must not
/// overlap `lhs` or `rhs`.
unsafe fn gemm_f32(
    [m, n, k]: [usize; 3],
    (dst, dst_rs): (*mut f32, isize),
    (lhs, lhs_rs): (*const f32, isize),
    (rhs, rhs_rs): (*const f32, isize),
    accumulate: bool,
) {
    // SAFETY: forwarded from the caller's contract. With `read_dst` gemm computes
    // dst = 1·dst + 1·lhs·rhs, without it dst = lhs·rhs (alpha ignored).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs,
            accumulate,
            lhs,
            1,
            lhs_rs,
            rhs,
            1,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_columns_matches_a_brute_force_scan() {
        for width in 1..6 {
            for stride in 1..4 {
                for offset in -5isize..5 {
                    for first in 0..4 {
                        for len in 0..6 {
                            let inside = |i: usize| {
                                let c = ((first + i) * stride) as isize + offset;
                                c >= 0 && c < width as isize
                            };
                            let (lo, hi) = valid_columns(first, len, stride, offset, width);
                            for i in 0..len {
                                assert_eq!(
                                    inside(i),
                                    (lo..hi).contains(&i),
                                    "w {width} s {stride} off {offset} first {first} i {i}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
