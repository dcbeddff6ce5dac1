//! `memsilo upgrade DIR`: converts a memsilo 0.1.0 data directory to the current format (see
//! `memsilo::upgrade`), with a progress bar per environment when stderr is a terminal and a
//! line per environment otherwise.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use memsilo::upgrade::{UpgradeOutcome, UpgradeProgress};

pub(crate) const USAGE: &str = "\
usage: memsilo upgrade DIR

Converts the data directory DIR written by memsilo 0.1.0 to this version's format. Stop the
server first. The old files are read by memsilo-dump-v0 (next to memsilo, else
MEMSILO_DUMP_V0, else on PATH), written again into DIR.upgrading, verified, and swapped in;
the 0.1.0 directory is kept as DIR.0.1.0-backup. Safe to run again after an interruption; on
a directory already upgraded it changes nothing.";

pub(crate) fn parse(args: &[String]) -> Result<PathBuf, String> {
    match args {
        [dir] if !dir.starts_with('-') => Ok(PathBuf::from(dir)),
        _ => Err("usage: memsilo upgrade DIR".into()),
    }
}

/// Runs the upgrade and returns the line that sums it up.
pub(crate) fn run(dir: &Path) -> Result<String, String> {
    let started = Instant::now();
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} rows {per_sec}") {
        bar.set_style(style);
    }
    let mut show = |p: UpgradeProgress<'_>| {
        let what = format!("[{}/{}] {}", p.index, p.environments, p.environment);
        if p.rows == 0 && !p.finished {
            bar.set_length(p.rows_total);
            bar.set_message(what.clone());
        }
        bar.set_position(p.rows);
        if p.finished {
            let line = format!("memsilo: {what}: {} rows", p.rows);
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
    };
    let report = memsilo::upgrade::upgrade(dir, None, &mut show);
    bar.finish_and_clear();
    let report = report.map_err(|e| format!("upgrade of {} failed: {e}", dir.display()))?;
    let backup = report.backup.as_deref().map_or_else(String::new, |b| {
        format!("; the 0.1.0 files are kept in {} (remove it when satisfied)", b.display())
    });
    Ok(match report.outcome {
        UpgradeOutcome::Upgraded => format!(
            "upgraded {} to the current format: {} environments, {} rows in {:.2} s{backup}",
            dir.display(),
            report.environments,
            report.rows,
            started.elapsed().as_secs_f64()
        ),
        UpgradeOutcome::Finished => {
            format!("finished the interrupted upgrade of {}{backup}", dir.display())
        }
        UpgradeOutcome::AlreadyCurrent => {
            format!("{} is already in the current format: nothing to do{backup}", dir.display())
        }
    })
}
