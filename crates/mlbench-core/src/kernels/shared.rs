//! Plumbing shared by the CPU kernels: a per-thread scratch buffer and an output pointer that
//! parallel tasks may share.

use std::cell::RefCell;

thread_local! {
    /// Per-thread scratch buffer, reused across calls and kernels (grows to the largest request
    /// seen). No kernel nests two `with_scratch` calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` floats of this thread's scratch buffer (contents unspecified).
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// An output buffer shared by the parallel tasks of one kernel call, each of which writes its
/// own elements.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);

// SAFETY: every kernel that hands an `OutPtr` to parallel tasks gives each task a disjoint set of
// output elements (stated in a SAFETY comment at each dereference), so sharing the pointer
// creates no data race; the buffer outlives the parallel loop, which borrows it throughout.
unsafe impl Send for OutPtr {}
// SAFETY: see `Send` above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The raw pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}
