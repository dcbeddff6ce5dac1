//! A minimal leveled logger to stderr (`--log-level` / `MEMSILO_LOG`). Keys are never logged:
//! request lines carry the method, the route template, the status and the time taken.
//! What the library reports through `tracing` (background failures, model downloads) is
//! printed here too once [`install`] has run (`memsilo serve` and the other commands do).

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

/// Prints what memsilo's library code reports through `tracing` (background workers' failures,
/// an embedding model that is missing or being downloaded) as lines of this log, at the
/// process-wide level. Installed once per process by [`install`]; events of other crates are
/// not shown.
struct Bridge;

/// The `tracing` level of an event as a [`Level`] of this log.
fn level_of(level: tracing::Level) -> Level {
    match level {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::INFO => Level::Info,
        _ => Level::Debug,
    }
}

impl tracing::Subscriber for Bridge {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if meta.target().starts_with("memsilo") {
            // The level can change at run time: ask again at every event.
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target().starts_with("memsilo") && enabled(level_of(*meta.level()))
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        log(level_of(*event.metadata().level()), format_args!("{}", line.0));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// An event's message, then its other fields as ` name=value`.
struct Line(String);

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = if field.name() == "message" {
            write!(self.0, "{value:?}")
        } else {
            write!(self.0, " {}={value:?}", field.name())
        };
    }
}

/// Makes memsilo's library messages (reported through `tracing`) lines of this log, unless
/// the process already has a global `tracing` subscriber (then they go to that one).
pub fn install() {
    let _ = tracing::subscriber::set_global_default(Bridge);
}
