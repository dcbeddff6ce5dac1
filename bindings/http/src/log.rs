//! A minimal leveled logger to stderr (`--log-level` / `MEMSILO_LOG`). Keys are never logged:
//! request lines carry the method, the route template, the status and the time taken.

use std::sync::atomic::{AtomicU8, Ordering};

/// Log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing at all.
    Off = 0,
    /// Failures of the server itself.
    Error = 1,
    /// Unexpected but handled conditions.
    Warn = 2,
    /// Start and stop.
    Info = 3,
    /// One line per request.
    Debug = 4,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

impl Level {
    /// Parses `off|error|warn|info|debug` (also `trace`, as debug).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => Level::Off,
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" | "trace" => Level::Debug,
            _ => return None,
        })
    }
}

/// Sets the process-wide level.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether messages at `level` are printed.
pub fn enabled(level: Level) -> bool {
    level != Level::Off && level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Prints `message` at `level`.
pub fn log(level: Level, message: std::fmt::Arguments<'_>) {
    if enabled(level) {
        eprintln!("memsilo: {message}");
    }
}
