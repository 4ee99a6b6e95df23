//! Heap accounting: a counting global allocator, so the memory phases can report
//! heap growth next to RSS. Counting is off (one relaxed load per call) outside
//! a measured window.

use super::*;

/// Counts live heap bytes while [`TRACKING`] is on (a relaxed load otherwise),
/// so the memory phases can report heap growth next to RSS.
pub(crate) struct CountingAlloc;

pub(crate) static TRACKING: AtomicBool = AtomicBool::new(false);
pub(crate) static LIVE: AtomicI64 = AtomicI64::new(0);
pub(crate) static PEAK: AtomicI64 = AtomicI64::new(0);

pub(crate) fn track(delta: i64) {
    if TRACKING.load(Ordering::Relaxed) {
        let now = LIVE.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only updates counters.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            track(layout.size() as i64);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            track(layout.size() as i64);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            track(new_size as i64 - layout.size() as i64);
        }
        new
    }
}

#[global_allocator]
pub(crate) static GLOBAL: CountingAlloc = CountingAlloc;

/// Starts counting heap growth from zero.
pub(crate) fn heap_track_start() {
    TRACKING.store(false, Ordering::SeqCst);
    LIVE.store(0, Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    TRACKING.store(true, Ordering::SeqCst);
}

/// Stops counting; returns (net growth, peak growth) in bytes.
pub(crate) fn heap_track_stop() -> (i64, i64) {
    TRACKING.store(false, Ordering::SeqCst);
    (LIVE.load(Ordering::SeqCst), PEAK.load(Ordering::SeqCst))
}
