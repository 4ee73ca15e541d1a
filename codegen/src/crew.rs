//! A crew of helper threads for splitting one kernel at a time over the cores, with the
//! latency of a few hundred nanoseconds that kernels of tens of microseconds need.
//!
//! A general pool (rayon) wakes a sleeping worker through the operating system for each
//! job, which costs about as much as the small kernels of a training step take to run:
//! split over two threads, the digits CNN ran at 0.6x of its one-thread speed. Here the
//! helpers spin on a counter between jobs for a while (a training step hands out jobs
//! every few microseconds) and only park when no job has come for `SPIN`, so a helper
//! that is needed is almost always already awake. The calling thread runs part 0 of every
//! job itself and spins until the helpers are done.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a helper waits for the next job awake before it parks.
const SPIN: Duration = Duration::from_micros(300);

/// A job: part `i` of `parts`, for each helper `i` below `parts`.
type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped once per job; a helper runs a job when it sees the number change.
    epoch: AtomicU64,
    /// The job of the current epoch, written before `epoch` is bumped.
    job: UnsafeCell<Option<Job>>,
    parts: AtomicUsize,
    /// Helpers that have not finished the current job.
    running: AtomicUsize,
    /// Helpers parked on `wake`.
    parked: AtomicUsize,
    stop: AtomicBool,
    sleep: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the thread holding `Crew::dispatch` while no helper is
// running (`running` is 0), and read by helpers only after they see the epoch it belongs
// to; the epoch's release/acquire pair orders the two.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// Helper threads that run parts of one job at a time beside the calling thread.
pub struct Crew {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
    /// One job at a time, even when several runners share the crew.
    dispatch: Mutex<()>,
}

impl std::fmt::Debug for Crew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crew({} threads)", self.threads())
    }
}

impl Crew {
    /// A crew of `threads` threads in all: the caller and `threads - 1` helpers.
    pub fn new(threads: usize) -> std::io::Result<Crew> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            parts: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut helpers = Vec::new();
        for index in 1..threads.max(1) {
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("nnc-worker-{index}"))
                .spawn(move || helper(&shared, index))?;
            helpers.push(handle);
        }
        Ok(Crew { shared, helpers, dispatch: Mutex::new(()) })
    }

    /// The threads of the crew, counting the caller.
    pub fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Runs `part(i)` for every `i` in `0..parts` (at most `threads()`), part 0 on the
    /// calling thread, and returns when all are done.
    pub fn run(&self, parts: usize, part: &(dyn Fn(usize) + Sync)) {
        let parts = parts.min(self.threads());
        if parts <= 1 {
            part(0);
            return;
        }
        let _one_job = self.dispatch.lock().unwrap_or_else(|e| e.into_inner());
        let shared = &*self.shared;
        // SAFETY: the lifetime is erased only until `running` is back to 0 below, before
        // this function returns; no helper touches the job after that.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(part) };
        // SAFETY: no helper is running (the previous job ended with `running` at 0).
        unsafe { *shared.job.get() = Some(job) };
        shared.parts.store(parts, Ordering::Relaxed);
        shared.running.store(self.helpers.len(), Ordering::Relaxed);
        shared.epoch.fetch_add(1, Ordering::SeqCst);
        if shared.parked.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this with a helper between its last look at the epoch
            // and its wait, so the notification cannot be lost.
            drop(shared.sleep.lock().unwrap_or_else(|e| e.into_inner()));
            shared.wake.notify_all();
        }
        // Waits for the helpers even if part 0 unwinds, so that none outlives the job.
        let _helpers_done = WaitForHelpers(shared);
        part(0);
    }
}

struct WaitForHelpers<'s>(&'s Shared);

impl Drop for WaitForHelpers<'_> {
    fn drop(&mut self) {
        let mut spins = 0u32;
        while self.0.running.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                // A helper was descheduled: let it have the core.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        drop(self.shared.sleep.lock().unwrap_or_else(|e| e.into_inner()));
        self.shared.wake.notify_all();
        for handle in self.helpers.drain(..) {
            let _ = handle.join();
        }
    }
}

fn helper(shared: &Shared, index: usize) {
    // The epoch the crew started at, not the one now: a job may have been handed out
    // before this thread first ran.
    let mut seen = 0;
    loop {
        let Some(epoch) = next_epoch(shared, seen) else { return };
        seen = epoch;
        if index < shared.parts.load(Ordering::Relaxed) {
            // SAFETY: the job of this epoch was written before the epoch was bumped, and
            // the caller waits for `running` to reach 0 before it ends.
            if let Some(job) = unsafe { *shared.job.get() } {
                unsafe { (*job)(index) };
            }
        }
        shared.running.fetch_sub(1, Ordering::Release);
    }
}

/// Waits for an epoch after `seen`: spinning for `SPIN`, then parked. `None` when the crew
/// stops.
fn next_epoch(shared: &Shared, seen: u64) -> Option<u64> {
    let started = Instant::now();
    let mut spins = 0u32;
    loop {
        let epoch = shared.epoch.load(Ordering::Acquire);
        if epoch != seen {
            return Some(epoch);
        }
        if shared.stop.load(Ordering::Relaxed) {
            return None;
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(256) && started.elapsed() > SPIN {
            break;
        }
        std::hint::spin_loop();
    }
    let mut guard = shared.sleep.lock().unwrap_or_else(|e| e.into_inner());
    shared.parked.fetch_add(1, Ordering::SeqCst);
    loop {
        let epoch = shared.epoch.load(Ordering::SeqCst);
        let stop = shared.stop.load(Ordering::SeqCst);
        if epoch != seen || stop {
            shared.parked.fetch_sub(1, Ordering::SeqCst);
            return (!stop).then_some(epoch);
        }
        guard = shared.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_part_runs_once_per_job() {
        let crew = Crew::new(3).unwrap();
        let counts: Vec<AtomicU32> = (0..3).map(|_| AtomicU32::new(0)).collect();
        for round in 0..2000 {
            let parts = 1 + round % 3;
            crew.run(parts, &|i| {
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
        }
        let counts: Vec<u32> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        // Part 0 in every job; part 1 when parts is 2 or 3; part 2 when parts is 3.
        assert_eq!(counts, vec![2000, 1333, 666]);
    }

    #[test]
    fn parked_helpers_wake_for_the_next_job() {
        let crew = Crew::new(2).unwrap();
        let ran = AtomicU32::new(0);
        for _ in 0..3 {
            std::thread::sleep(SPIN * 4);
            crew.run(2, &|i| {
                ran.fetch_add(1 << (8 * i), Ordering::Relaxed);
            });
        }
        assert_eq!(ran.load(Ordering::Relaxed), 3 | (3 << 8));
    }

    #[test]
    fn a_job_sees_the_writes_of_the_one_before() {
        let crew = Crew::new(2).unwrap();
        let cells: Vec<AtomicU32> = (0..2).map(|_| AtomicU32::new(0)).collect();
        let stale = AtomicU32::new(0);
        for round in 1..=500u32 {
            crew.run(2, &|i| {
                // Each part checks the other's value from the previous job.
                if cells[1 - i].load(Ordering::Relaxed) != round - 1 {
                    stale.fetch_add(1, Ordering::Relaxed);
                }
            });
            crew.run(2, &|i| cells[i].store(round, Ordering::Relaxed));
        }
        assert_eq!(stale.load(Ordering::Relaxed), 0);
    }
}
