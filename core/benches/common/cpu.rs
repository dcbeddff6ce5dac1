//! CPU time of this process and thread, for benches on a shared machine: wall-clock figures
//! then overstate what one core takes, so benches print both.

use std::time::Duration;

/// CPU time of this process so far.
#[allow(dead_code)] // not every bench uses both
pub fn cpu() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time of this thread so far (a recall runs on its caller's thread).
#[allow(dead_code)]
pub fn thread_cpu() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid pointer given.
    unsafe { libc::clock_gettime(id, &raw mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
