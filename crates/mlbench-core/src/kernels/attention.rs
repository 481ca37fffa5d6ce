//! Fused scaled-dot-product attention: `softmax(scale * q kᵀ + mask) v`.
//!
//! Shapes: `q` is (b, h, tq, d), `k` is (b, h, tk, d) and `v` is (b, h, tk, dv).
//!
//! - [`attention`] returns (b, h, tq, dv), like the Candle composition.
//! - [`attention_merged`] returns (b, tq, h * dv), heads already merged: what the output
//!   projection of a transformer block takes, without the `transpose(1, 2)` copy.
//! - [`attention_reference`] is the plain Candle composition (matmul, mask add,
//!   `softmax_last_dim`, matmul); the two functions above fall back to it for every device and
//!   dtype but CPU f32, and the tests compare against it.
//!
//! The CPU f32 kernel never materialises the (b, h, tq, tk) score tensor. It runs in parallel
//! (rayon) over (head, batch, block of up to 256 query rows), and per block:
//!
//! 1. `scale * q kᵀ` into a per-thread buffer reused across calls: one single-threaded `gemm`
//!    call, or for blocks of at most 4 rows one gemv per row (gemm packs all of `k` for a
//!    few rows and ends up slower than the gemvs);
//! 2. a vectorised row softmax (polynomial `exp`) that leaves the rows unnormalised;
//! 3. a second `gemm` with `v` straight into the output, whose rows are then divided by
//!    their softmax sums.
//!
//! Problems under about 1 M multiply-adds run on the calling thread: waking the pool costs more.
//! Masked keys are skipped, not computed: each block stops at the last key its last row sees.
//!
//! For beam search against shared cross-attention keys, pass the beams as query rows of one
//! batch entry: `q` (beams, h, 1, d) viewed as (1, h, beams, d) with `q.transpose(0, 2)`, `k`
//! and `v` (1, h, 1500, d) not repeated; [`attention_merged`] then returns (1, beams, h * dv),
//! which reshapes for free to (beams, 1, h * dv). Keys and values are then read once per head
//! instead of once per beam. `broadcast_as` of `k` and `v` over the batch also works (no
//! copy), with the heads of consecutive batch entries run back to back on one core.
//!
//! Inputs may be strided views (a transposed `(b, t, h, d)` projection, a `narrow`ed fused
//! projection, a stride-0 `broadcast_as` over the batch): the kernel reads them in place as
//! long as the last dimension has unit stride, and copies them with `contiguous()` otherwise.
//!
//! With `causal_offset: Some(off)`, query row `i` attends to keys `j <= off + i` only: the
//! decoder's prompt pass over `tq` new tokens with `off` tokens already in the KV cache
//! (`tk = off + tq`).

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::math;
use super::shared::{with_scratch, OutPtr};

/// Attention with the heads kept apart: returns (b, h, tq, dv).
///
/// `q` is (b, h, tq, d), `k` is (b, h, tk, d), `v` is (b, h, tk, dv); `scale` multiplies the
/// scores (usually `1 / sqrt(d)`); with `causal_offset: Some(off)` query row `i` sees keys
/// `j <= off + i` only, `None` means no mask. See the [module docs](self) for the kernel.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    causal_offset: Option<usize>,
) -> Result<Tensor> {
    run(q, k, v, scale, causal_offset, false)
}

/// Attention with the heads merged: returns (b, tq, h * dv), i.e. `attention(..)`
/// followed by `transpose(1, 2)` and a reshape, without the copy on the CPU f32 path.
///
/// Same arguments as [`attention`].
pub fn attention_merged(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    causal_offset: Option<usize>,
) -> Result<Tensor> {
    run(q, k, v, scale, causal_offset, true)
}

/// The plain Candle composition: `softmax_last_dim((q * scale) kᵀ + mask) v`, (b, h, tq, dv).
///
/// Works on every device and dtype; the mask is `-inf` at `j > off + i`, built in the dtype of
/// the scores. This is what [`attention`] falls back to off CPU f32.
pub fn attention_reference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    causal_offset: Option<usize>,
) -> Result<Tensor> {
    let dims = check_shapes(q, k, v)?;
    let q = (q.contiguous()? * f64::from(scale))?;
    let mut w = q.matmul(&k.contiguous()?.t()?)?;
    if let Some(off) = causal_offset {
        let (tq, tk) = (dims.tq, dims.tk);
        let mask: Vec<f32> = (0..tq)
            .flat_map(|i| {
                (0..tk).map(move |j| {
                    if j > off.saturating_add(i) {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (tq, tk), q.device())?.to_dtype(w.dtype())?;
        w = w.broadcast_add(&mask)?;
    }
    let w = candle_nn::ops::softmax_last_dim(&w)?;
    w.matmul(&v.contiguous()?)
}

/// Most query rows per block. gemm repacks `k` for every block, so larger blocks amortise it:
/// encoder CPU time fell 9 % from 64 to 256 rows and stayed flat up to 512 (the 1.5 MB score
/// block then lives in L2/L3). Fewer rows when needed to give every thread several blocks.
const BLOCK_Q: usize = 256;

/// Fewest query rows per block when blocks are split to feed the threads.
const MIN_BLOCK_Q: usize = 32;

/// Most scores per block (4 MB of f32): bounds the per-thread scratch buffer for long keys.
const MAX_BLOCK_SCORES: usize = 1 << 20;

/// Below this many multiply-adds (about 30 to 60 µs of work) the kernel runs on the calling
/// thread. Handing work to rayon's pool and back measured 15 to 40 µs on the 2-core VM
/// (sleeping vCPUs wake slowly): h = 6, tk = 448, one query row (340 K) took 29 µs alone and
/// 43 µs in parallel, while h = 6, tk = 1500 (1.2 M) went from 115 to 80 µs in parallel.
const MIN_PARALLEL_MACS: usize = 1 << 20;

/// Blocks of at most this many query rows compute their scores with one gemv per row: gemm
/// packs all of k for a block of 2 to 4 rows and ends up 1.5 to 4x slower than the gemvs.
const ROWWISE_MAX: usize = 4;

/// The checked dimensions of one attention call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    dv: usize,
}

fn check_shapes(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Dims> {
    let (b, h, tq, d) = q.dims4()?;
    let (kb, kh, tk, kd) = k.dims4()?;
    let (vb, vh, vt, dv) = v.dims4()?;
    if (kb, kh, kd) != (b, h, d) || (vb, vh, vt) != (b, h, tk) {
        candle_core::bail!(
            "attention: q {:?}, k {:?} and v {:?} do not match: expected (b, h, tq, d), \
             (b, h, tk, d) and (b, h, tk, dv)",
            q.dims(),
            k.dims(),
            v.dims()
        )
    }
    Ok(Dims {
        b,
        h,
        tq,
        tk,
        d,
        dv,
    })
}

fn run(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    causal_offset: Option<usize>,
    merged: bool,
) -> Result<Tensor> {
    let dims = check_shapes(q, k, v)?;
    let fast = [q, k, v]
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
        && dims.b * dims.h * dims.tq * dims.tk * dims.d * dims.dv > 0;
    if !fast {
        let y = attention_reference(q, k, v, scale, causal_offset)?;
        return if merged {
            y.transpose(1, 2)?
                .reshape((dims.b, dims.tq, dims.h * dims.dv))
        } else {
            Ok(y)
        };
    }
    let (q, k, v) = (unit_last(q)?, unit_last(k)?, unit_last(v)?);
    q.apply_op3_no_bwd(
        &k,
        &v,
        &Attention {
            scale,
            causal_offset,
            merged,
        },
    )
}

/// `t` itself when its last dimension has unit stride (or length 1), else a contiguous copy.
fn unit_last(t: &Tensor) -> Result<Tensor> {
    if t.stride().last() == Some(&1) || t.dims().last() == Some(&1) {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

struct Attention {
    scale: f32,
    causal_offset: Option<usize>,
    merged: bool,
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "mlbench-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(qs), CpuStorage::F32(ks), CpuStorage::F32(vs)) = (s1, s2, s3) else {
            candle_core::bail!("{}: expected f32 storage", self.name())
        };
        let q = View::new(qs, l1)?;
        let k = View::new(ks, l2)?;
        let v = View::new(vs, l3)?;
        let dims = Dims {
            b: q.dims[0],
            h: q.dims[1],
            tq: q.dims[2],
            tk: k.dims[2],
            d: q.dims[3],
            dv: v.dims[3],
        };
        if k.dims != [dims.b, dims.h, dims.tk, dims.d]
            || v.dims != [dims.b, dims.h, dims.tk, dims.dv]
            || dims.b * dims.h * dims.tq * dims.tk * dims.d * dims.dv == 0
        {
            candle_core::bail!("{}: bad shapes {l1:?} {l2:?} {l3:?}", self.name())
        }
        let Dims {
            b, h, tq, dv, tk, ..
        } = dims;
        let mut out = vec![0f32; b * h * tq * dv];
        // Strides of the output (b, h, row) in elements; the column stride is 1.
        let out_strides = if self.merged {
            [tq * h * dv, dv, h * dv]
        } else {
            [h * tq * dv, tq * dv, dv]
        };
        let kernel = Kernel {
            q,
            k,
            v,
            dims,
            scale: self.scale,
            causal_offset: self.causal_offset,
            out: OutPtr(out.as_mut_ptr()),
            out_strides,
        };
        // At least 4 tasks per thread when the rows allow it, so that threads stay balanced.
        let want_blocks = (4 * rayon::current_num_threads()).div_ceil(b * h);
        let block = tq
            .div_ceil(want_blocks)
            .clamp(MIN_BLOCK_Q, BLOCK_Q)
            .min(MAX_BLOCK_SCORES / tk)
            .clamp(1, tq);
        let blocks = tq.div_ceil(block);
        let tasks = b * h * blocks;
        // Head-major task order: rayon hands each thread a contiguous range of tasks, so the
        // blocks of one head, and the same head of consecutive batch entries (beams sharing
        // broadcast keys and values), run back to back on one core while k and v are in cache.
        let task = |t: usize| {
            let (hb, blk) = (t / blocks, t % blocks);
            let rows = blk * block..tq.min((blk + 1) * block);
            kernel.run(hb % b, hb / b, rows);
        };
        let macs = b * h * tq * tk * (dims.d + dv);
        if macs < MIN_PARALLEL_MACS || tasks == 1 {
            (0..tasks).for_each(task);
        } else {
            (0..tasks).into_par_iter().for_each(task);
        }
        let shape: Shape = if self.merged {
            (b, tq, h * dv).into()
        } else {
            (b, h, tq, dv).into()
        };
        Ok((CpuStorage::F32(out), shape))
    }
}

/// A rank-4 f32 tensor read in place: storage, offset, dims and strides, bounds-checked once.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    start: usize,
    dims: [usize; 4],
    strides: [usize; 4],
}

impl<'a> View<'a> {
    fn new(data: &'a [f32], layout: &Layout) -> Result<Self> {
        let (Ok(dims), Ok(strides)) = (
            <[usize; 4]>::try_from(layout.dims()),
            <[usize; 4]>::try_from(layout.stride()),
        ) else {
            candle_core::bail!("attention: expected rank-4 tensors, got {layout:?}")
        };
        if strides[3] != 1 && dims[3] != 1 {
            candle_core::bail!("attention: last dimension must have unit stride, got {layout:?}")
        }
        // Highest element any (b, h, row, col) index reaches; every read below stays at or
        // under it, so checking it against the storage once bounds all of them.
        let last = dims
            .iter()
            .zip(&strides)
            .try_fold(layout.start_offset(), |acc, (&n, &s)| {
                n.checked_sub(1)
                    .and_then(|n| n.checked_mul(s))
                    .and_then(|x| acc.checked_add(x))
            });
        match last {
            Some(last) if last < data.len() => {}
            _ => candle_core::bail!("attention: layout {layout:?} exceeds the storage"),
        }
        Ok(Self {
            data,
            start: layout.start_offset(),
            dims,
            strides,
        })
    }

    /// Offset of element (b, h, 0, 0).
    fn base(&self, b: usize, h: usize) -> usize {
        self.start + b * self.strides[0] + h * self.strides[1]
    }

    /// Pointer to row `i` of the head at `base`, for gemm; in bounds by the check in `new`
    /// as long as `i < dims[2]`.
    fn row_ptr(&self, base: usize, i: usize) -> *const f32 {
        debug_assert!(i < self.dims[2]);
        self.data[base + i * self.strides[2]..].as_ptr()
    }
}

struct Kernel<'a> {
    q: View<'a>,
    k: View<'a>,
    v: View<'a>,
    dims: Dims,
    scale: f32,
    causal_offset: Option<usize>,
    out: OutPtr,
    /// Output strides of (b, h, row).
    out_strides: [usize; 3],
}

impl Kernel<'_> {
    /// Keys visible to query row `i`.
    fn visible(&self, i: usize) -> usize {
        match self.causal_offset {
            Some(off) => off.saturating_add(i).saturating_add(1).min(self.dims.tk),
            None => self.dims.tk,
        }
    }

    /// Output row `i` of head (b, h), to be written by the one task that owns it.
    ///
    /// # Safety
    /// `b`, `h`, `i` must be in range and no other live reference may cover this row: each
    /// task owns the rows of its (b, h, block) and takes one row at a time.
    #[allow(clippy::mut_from_ref)]
    unsafe fn out_row(&self, b: usize, h: usize, i: usize) -> &mut [f32] {
        let [sb, sh, sr] = self.out_strides;
        let at = b * sb + h * sh + i * sr;
        // SAFETY: `at + dv` is within the output buffer (b < B, h < H, i < tq and the
        // strides are those of a dense (b, h, tq, dv) or (b, tq, h, dv) buffer), and the
        // caller guarantees exclusive access to this row.
        unsafe { std::slice::from_raw_parts_mut(self.out.get().add(at), self.dims.dv) }
    }

    /// A block of query rows: scores with one gemm (or one gemv per row when the block has
    /// at most `ROWWISE_MAX` rows), row softmax, output with a second gemm.
    fn run(&self, b: usize, h: usize, rows: std::ops::Range<usize>) {
        let Dims { d, dv, .. } = self.dims;
        let (qb, kb, vb) = (self.q.base(b, h), self.k.base(b, h), self.v.base(b, h));
        let m = rows.len();
        // Keys visible to the last (most-seeing) row of the block: the others see a prefix.
        let n = self.visible(rows.end - 1);
        with_scratch(m * n + m, |buf| {
            let (s, sums) = buf.split_at_mut(m * n);
            let q_rs = self.q.strides[2] as isize;
            let k_rs = self.k.strides[2] as isize;
            if m <= ROWWISE_MAX {
                for (r, row) in s.chunks_exact_mut(n).enumerate() {
                    let i = rows.start + r;
                    let seen = self.visible(i);
                    // SAFETY: dst is `row[..seen]` (1 x seen, in our scratch block); lhs is
                    // row i of q's head (b, h), 1 x d, unit column stride; rhs is kᵀ for keys
                    // 0..seen <= tk of head (b, h), read as k[j][c] (column stride strides[2],
                    // row stride 1). `View::new` bounds-checked every element of q and k read
                    // here, and nothing else accesses the scratch block meanwhile.
                    unsafe {
                        gemm_f32(
                            [1, seen, d],
                            (row.as_mut_ptr(), seen as isize),
                            (self.q.row_ptr(qb, i), q_rs, 1),
                            (self.k.row_ptr(kb, 0), 1, k_rs),
                            self.scale,
                        )
                    };
                }
            } else {
                // SAFETY: dst is the m x n scratch block (row stride n), exclusively ours; lhs
                // is rows `rows` of q's head (b, h), m x d with row stride strides[2] and unit
                // column stride; rhs is kᵀ for keys 0..n <= tk of head (b, h), read as k[j][c]
                // (column stride strides[2], row stride 1). `View::new` bounds-checked every
                // element of q and k read here.
                unsafe {
                    gemm_f32(
                        [m, n, d],
                        (s.as_mut_ptr(), n as isize),
                        (self.q.row_ptr(qb, rows.start), q_rs, 1),
                        (self.k.row_ptr(kb, 0), 1, k_rs),
                        self.scale,
                    )
                };
            }
            for ((r, row), sum) in s.chunks_exact_mut(n).enumerate().zip(sums.iter_mut()) {
                let (seen, masked) = row.split_at_mut(self.visible(rows.start + r));
                let mx = math::max(seen);
                *sum = math::exp_sub_sum(seen, mx);
                masked.fill(0.0);
            }
            let [sb, sh, sr] = self.out_strides;
            let out_at = b * sb + h * sh + rows.start * sr;
            // SAFETY: dst is rows `rows` of the output head (b, h): m x dv with row stride sr
            // and unit column stride, inside the output buffer (see `out_row`), written by this
            // task only (no reference to these rows is live); lhs is the m x n scratch block of
            // probabilities (row stride n); rhs is rows 0..n <= tk of v's head (b, h), n x dv
            // with row stride strides[2] and unit column stride, bounds-checked by `View::new`.
            unsafe {
                gemm_f32(
                    [m, dv, n],
                    (self.out.get().add(out_at), sr as isize),
                    (s.as_ptr(), n as isize, 1),
                    (self.v.row_ptr(vb, 0), self.v.strides[2] as isize, 1),
                    1.0,
                )
            };
            for (i, sum) in rows.zip(sums.iter()) {
                // SAFETY: this task owns row i of head (b, h); the gemm above has returned.
                math::scale(unsafe { self.out_row(b, h, i) }, 1.0 / sum);
            }
        })
    }
}

/// `dst = scale * lhs · rhs` for an `m x n` row-major `dst` (row stride given, unit column
/// stride), `lhs` `m x k` and `rhs` `k x n` given as (pointer, row stride, column stride):
/// one single-threaded call of the `gemm` crate.
///
/// # Safety
/// Every element the shapes and strides address must be in bounds of a live allocation,
/// `dst`'s elements must not be accessed by anyone else during the call, and `dst` must not
/// overlap `lhs` or `rhs`.
unsafe fn gemm_f32(
    [m, n, k]: [usize; 3],
    (dst, dst_rs): (*mut f32, isize),
    (lhs, lhs_rs, lhs_cs): (*const f32, isize, isize),
    (rhs, rhs_rs, rhs_cs): (*const f32, isize, isize),
    scale: f32,
) {
    // SAFETY: forwarded from the caller's contract; with `read_dst = false` gemm only writes
    // dst (alpha is ignored).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs,
            false,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            0.0,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}
