//! What the server benches (`http`, `namespaces`, `compare`) share: their HTTP client, the CPU
//! time of the server processes they measure, and the wrk load generator.

// Each bench uses a part of this module.
#![allow(dead_code)]

/// A keep-alive HTTP/1.1 client that reports every status (no proxy).
pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .max_idle_connections_per_host(1)
            .build(),
    )
}

/// CPU seconds (user + system) of process `pid` so far, from `/proc`.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat; 11 and 12 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of `pid` and every process below it (a server that runs workers).
pub fn cpu_tree(pid: u32) -> f64 {
    let children: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect();
    cpu_secs(pid) + children.into_iter().map(cpu_tree).sum::<f64>()
}

/// Runs wrk (Debian's package) on one thread with `connections` keep-alive connections for
/// `secs` seconds, driven by the Lua `script`, against `url`: what it printed, and the CPU
/// seconds it used (its own rusage, so the load generator's cost is known apart from the
/// server's).
#[allow(clippy::zombie_processes)] // reaped by the wait4 below, which also gives its rusage
pub fn wrk(url: &str, connections: usize, secs: f64, script: &std::path::Path) -> (String, f64) {
    use std::io::Read as _;
    let mut child = std::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{secs}s"), "--timeout", "60s"])
        .arg("-s")
        .arg(script)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wrk runs (Debian: apt-get install -y wrk; the make targets install it)");
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    // SAFETY: rusage is plain integers (all-zero is valid); wait4 fills it and the status
    // for our own child, which `Child` has not reaped (its wait is never called).
    let (status, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let mut status = 0;
        libc::wait4(child.id() as i32, &raw mut status, 0, &raw mut usage);
        (status, usage)
    };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "wrk failed: {out}");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (out, secs(usage.ru_utime) + secs(usage.ru_stime))
}
