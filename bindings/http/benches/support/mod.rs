//! What the server benches (`namespaces`, `compare`) share: their HTTP client and the CPU
//! time of the server processes they measure.

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
