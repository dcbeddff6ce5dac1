//! `memsilo upgrade DIR`: converts a memsilo 0.1.0 data directory to the current format (see
//! `memsilo::upgrade`), with a progress bar per environment when stderr is a terminal and a
//! line per environment otherwise.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use memsilo::upgrade::{UpgradeOutcome, UpgradeProgress};

pub(crate) const USAGE: &str = "\
usage: memsilo upgrade DIR [--keyring DIR|env:]

Converts the data directory DIR written by memsilo 0.1.0 to this version's format. Stop the
server first. The old files are read by memsilo-dump-v0 (next to memsilo, else
MEMSILO_DUMP_V0, else on PATH), written again into DIR.upgrading, verified, and swapped in;
the 0.1.0 directory is kept as DIR.0.1.0-backup. Safe to run again after an interruption; on
a directory already upgraded it changes nothing.
  --keyring DIR|env:     write the new directory encrypted with the instance key of this key
                         provider (env MEMSILO_KEYRING; created there if missing), as
                         `memsilo serve --keyring` will open it";

/// `memsilo upgrade`'s arguments.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UpgradeArgs {
    pub dir: PathBuf,
    pub keyring: Option<PathBuf>,
}

pub(crate) fn parse(args: &[String]) -> Result<UpgradeArgs, String> {
    let usage = || "usage: memsilo upgrade DIR [--keyring DIR|env:]".to_owned();
    let mut keyring =
        std::env::var_os("MEMSILO_KEYRING").filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut dir = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.split_once('=') {
            Some(("--keyring", v)) => keyring = Some(PathBuf::from(v)),
            _ if arg == "--keyring" => keyring = Some(PathBuf::from(it.next().ok_or_else(usage)?)),
            _ if arg.starts_with('-') || dir.is_some() => return Err(usage()),
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    Ok(UpgradeArgs { dir: dir.ok_or_else(usage)?, keyring })
}

/// Runs the upgrade and returns the line that sums it up.
pub(crate) fn run(args: &UpgradeArgs) -> Result<String, String> {
    let dir = args.dir.as_path();
    let keys = match &args.keyring {
        Some(setting) => {
            Some(memsilo::keyring::provider_for(setting, dir).map_err(|e| e.to_string())?)
        }
        None => None,
    };
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
    let report = memsilo::upgrade::upgrade(dir, None, keys.as_deref(), &mut show);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn a_directory_and_an_optional_keyring_in_both_forms() {
        let dir =
            |d: &str, k: Option<&str>| UpgradeArgs { dir: d.into(), keyring: k.map(Into::into) };
        if std::env::var_os("MEMSILO_KEYRING").is_none() {
            assert_eq!(parse(&args("/srv/data")).unwrap(), dir("/srv/data", None));
        }
        assert_eq!(parse(&args("d --keyring /k")).unwrap(), dir("d", Some("/k")));
        assert_eq!(parse(&args("--keyring=env: d")).unwrap(), dir("d", Some("env:")));
        for bad in ["", "a b", "--keyring", "d --force"] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
