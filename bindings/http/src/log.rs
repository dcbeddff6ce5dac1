//! A minimal leveled logger to stderr (`--log-level` / `MEMSILO_LOG`). Keys are never logged:
//! request lines carry the method, the route template, the status and the time taken.
//! What the library reports through `tracing` (background failures, model downloads) is
//! printed here too once [`install`] has run (`memsilo serve` and the other commands do);
//! a model download's progress ([`memsilo::DOWNLOAD_PROGRESS`]) is drawn as a one-line bar,
//! at level `info`.

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
        if event.metadata().target() == memsilo::DOWNLOAD_PROGRESS {
            let mut progress = Progress::default();
            event.record(&mut progress);
            if enabled(level_of(*event.metadata().level())) {
                eprint!("{}", progress.bar());
            }
            return;
        }
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

/// A download progress event's fields (see [`memsilo::DOWNLOAD_PROGRESS`]).
#[derive(Debug, Default)]
struct Progress {
    file: String,
    done: u64,
    total: Option<u64>,
    finished: bool,
}

impl Progress {
    /// The bar, redrawn over the line it is on (`\r`); the last one ends the line.
    fn bar(&self) -> String {
        let mb = |b: u64| b as f64 / 1e6;
        let line = match self.total {
            Some(t) if t > 0 => {
                let filled = (self.done * 30 / t).min(30) as usize;
                format!(
                    "memsilo: {:<18} [{}{}] {:6.1}/{:.1} MB",
                    self.file,
                    "#".repeat(filled),
                    "-".repeat(30 - filled),
                    mb(self.done),
                    mb(t)
                )
            }
            _ => format!("memsilo: {:<18} {:6.1} MB", self.file, mb(self.done)),
        };
        format!("\r{line}{}", if self.finished { "\n" } else { "" })
    }
}

impl tracing::field::Visit for Progress {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "file" {
            value.clone_into(&mut self.file);
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match field.name() {
            "done" => self.done = value,
            "total" => self.total = Some(value),
            _ => {}
        }
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        if field.name() == "finished" {
            self.finished = value;
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

/// Makes memsilo's library messages (reported through `tracing`) lines of this log, unless
/// the process already has a global `tracing` subscriber (then they go to that one).
pub fn install() {
    let _ = tracing::subscriber::set_global_default(Bridge);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A download's progress events, as the library sends them, become the bar the command
    /// line shows: redrawn in place, ended with a newline by the last event.
    #[test]
    fn download_progress_events_draw_a_bar() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        tracing::subscriber::with_default(Collect(seen.clone()), || {
            for (done, finished) in [(0, false), (500_000, false), (1_000_000, true)] {
                tracing::info!(
                    target: memsilo::DOWNLOAD_PROGRESS,
                    file = "model.safetensors",
                    done = done as u64,
                    total = Some(1_000_000_u64),
                    finished,
                    "downloading model.safetensors"
                );
            }
        });
        let bars = seen.lock().unwrap().clone();
        assert_eq!(
            bars,
            [
                "\rmemsilo: model.safetensors  [------------------------------]    0.0/1.0 MB",
                "\rmemsilo: model.safetensors  [###############---------------]    0.5/1.0 MB",
                "\rmemsilo: model.safetensors  [##############################]    1.0/1.0 MB\n",
            ]
        );
        let unknown =
            Progress { file: "config.json".into(), done: 2_500_000, ..Progress::default() };
        assert_eq!(unknown.bar(), "\rmemsilo: config.json           2.5 MB");
    }

    /// Records each progress event's bar (what [`Bridge`] prints).
    struct Collect(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl tracing::Subscriber for Collect {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            assert_eq!(event.metadata().target(), memsilo::DOWNLOAD_PROGRESS);
            let mut progress = Progress::default();
            event.record(&mut progress);
            self.0.lock().unwrap().push(progress.bar());
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
}
