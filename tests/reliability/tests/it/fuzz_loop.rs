//! The fuzz targets on the stable toolchain: a seeded mutation loop over the committed
//! corpus (`fuzz/corpus/<target>/`), for `MEMSILO_FUZZ_SECS` seconds per target (default 2;
//! `make fuzz` runs 30, with libFuzzer when cargo-fuzz can run). A failing input is written
//! to `target/fuzz-failures/` and its hex printed.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use memsilo_reliability::fuzz::TARGETS;
use memsilo_reliability::{seed_from_env, Rng};

const TOKENS: &[&[u8]] = &[
    b"-1",
    b"0",
    b"1e308",
    b"1e400",
    b"-0.0",
    b"18446744073709551616",
    b"4294967296",
    b"NaN",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"\"\"",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\"msk_\"",
    b"[[[[[[[[",
    b"]]]]",
    b"{\"a\":",
    b"\"fuzz-b\"",
    b"\"fuzz-a\"",
    b"\"tags\":",
    b"\"namespace\":",
    b"\"ids\":[",
    b"\"vector\":[1e39]",
    b"\"top_k\":",
    b"\"depth\":",
    b"\"importance\":",
    b",",
];

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "empty corpus for {target}");
    seeds
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..rng.range(1, 5) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.insert(rng.below(len + 1), rng.next_u64() as u8),
            2 if len > 1 => {
                let a = rng.below(len);
                let b = (a + rng.below(8) + 1).min(len);
                input.drain(a..b);
            }
            3 if len > 1 => {
                let a = rng.below(len);
                let b = (a + rng.below(32) + 1).min(len);
                let chunk = input[a..b].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, chunk);
            }
            4 | 5 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, t.iter().copied());
            }
            _ if len > 0 => {
                // Replace a digit run with another number.
                let i = rng.below(len);
                if input[i].is_ascii_digit() {
                    input[i] = b"0123456789"[rng.below(10)];
                } else {
                    input[i] = rng.next_u64() as u8;
                }
            }
            _ => input.push(rng.next_u64() as u8),
        }
    }
}

#[test]
fn fuzz_targets_survive_a_seeded_mutation_loop() {
    let secs: f64 =
        std::env::var("MEMSILO_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let seed = seed_from_env("MEMSILO_FUZZ_SEED", 42);
    let only = std::env::var("MEMSILO_FUZZ_TARGET").ok();
    let mut rng = Rng::new(seed);
    let mut report = Vec::new();
    for (name, target) in TARGETS {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let seeds = corpus(name);
        let started = Instant::now();
        let mut execs = 0u64;
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let mut failure = None;
        while started.elapsed() < Duration::from_secs_f64(secs) {
            let mut input = seeds[rng.below(seeds.len())].clone();
            if execs >= seeds.len() as u64 {
                mutate(&mut rng, &mut input);
            }
            execs += 1;
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failure = Some((input, msg));
                break;
            }
        }
        std::panic::set_hook(hook);
        if let Some((input, msg)) = failure {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{name}-{seed}"));
            std::fs::write(&file, &input).unwrap();
            let hex = input.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
            panic!("fuzz target {name} failed after {execs} inputs: {msg}\ninput ({}): {hex}\nlossy: {}", file.display(), String::from_utf8_lossy(&input));
        }
        report
            .push(format!("{name}: {execs} executions in {:.1}s", started.elapsed().as_secs_f64()));
    }
    eprintln!("stable fuzz loop (seed {seed}):\n  {}", report.join("\n  "));
}
