//! Embeds the built admin console (`console/dist`, made by `make console`) into the binary.
//! Without a build the table is empty and `/console` answers 503 saying how to build it, so a
//! plain `cargo build` still compiles.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let console = manifest.join("../../console");
    let dist = console.join("dist");
    // The whole console folder: a missing `dist` cannot be watched without re-running every
    // build, and its creation changes the folder.
    println!("cargo:rerun-if-changed=build.rs");
    if console.is_dir() {
        println!("cargo:rerun-if-changed={}", console.display());
    }
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut out = String::from("&[\n");
    for (rel, abs) in &files {
        let _ = writeln!(out, "    ({rel:?}, include_bytes!({abs:?})),");
    }
    out.push(']');
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out_dir.join("console_assets.rs"), out).expect("OUT_DIR is writable");
}

/// Every file under `dir` as (path relative to `root` with `/` separators, absolute path).
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>();
            let abs = path.canonicalize().unwrap_or(path.clone());
            out.push((rel.join("/"), abs.to_string_lossy().into_owned()));
        }
    }
}
