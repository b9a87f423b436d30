//! The per-flow lock (`FlowState::lock`: 0 free, 1 held): packets of one connection can run on two
//! CPUs at once, and a flow's in-order bookkeeping and its samples in the ring must keep one order.
//! A compare-and-swap (BPF v3, selected by the build) waited for in a `bpf_loop`.

use crate::count;
use aya_ebpf::helpers::bpf_loop;
use core::intrinsics::{atomic_cxchg, atomic_xchg, AtomicOrdering};
use ekuwatch_ebpf_common::{counter, FlowState};

/// Tries this many times at most to take a flow's lock (the holder is another CPU in the middle of
/// one packet: a few microseconds). `bpf_loop` (kernel ≥ 5.17): its callback is verified once,
/// where an open-coded loop is walked iteration by iteration (1 024 at most).
const SPIN: u32 = 1 << 14;

/// The state `try_lock` works on (on the caller's stack, handed to `bpf_loop`).
#[repr(C)]
struct Spin {
    lock: *mut u64,
    won: u64,
    tries: u64,
}

/// One attempt: 1 (stop) once the lock is taken, 0 (go on) while it is held.
extern "C" fn try_lock(_i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the `Spin` `lock` passed to `bpf_loop`, alive for the whole loop; its
    // `lock` points into a map value valid for this program run, accessed only atomically.
    let s = unsafe { &mut *(ctx as *mut Spin) };
    s.tries += 1;
    // A volatile read first (BPF v3 has no atomic load; an aligned 64-bit load is single-copy
    // atomic), so waiting does not hammer the cache line with exchanges.
    // SAFETY: as above.
    if unsafe { core::ptr::read_volatile(s.lock) } != 0 {
        return 0;
    }
    // SAFETY: as above.
    let (_, won) = unsafe {
        atomic_cxchg::<u64, { AtomicOrdering::Acquire }, { AtomicOrdering::Relaxed }>(s.lock, 0, 1)
    };
    if won {
        s.won = 1;
        return 1;
    }
    0
}

/// Takes the flow's lock (`FlowState::lock`: 0 free, 1 held). False when it stayed busy.
#[inline(always)]
pub(crate) fn lock(st: *mut FlowState) -> bool {
    let mut s = Spin {
        // SAFETY: only the address is taken.
        lock: unsafe { core::ptr::addr_of_mut!((*st).lock) },
        won: 0,
        tries: 0,
    };
    // SAFETY: `try_lock` is a BPF callback of the right signature; `s` outlives the call.
    unsafe {
        bpf_loop(
            SPIN,
            try_lock as *mut core::ffi::c_void,
            &mut s as *mut Spin as *mut core::ffi::c_void,
            0,
        )
    };
    if s.tries > 1 {
        count(counter::LOCK_WAITED, 1);
    }
    s.won == 1
}

#[inline(always)]
pub(crate) fn unlock(st: *mut FlowState) {
    // SAFETY: as in `lock`. An exchange (a full barrier on BPF), not a plain store: every write
    // made under the lock is visible to the next holder.
    unsafe {
        atomic_xchg::<u64, { AtomicOrdering::Release }>(core::ptr::addr_of_mut!((*st).lock), 0)
    };
}
