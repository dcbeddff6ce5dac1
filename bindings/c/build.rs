//! Regenerates `include/memsilo.h` (and the Go module's copy, `go-ffi/include/memsilo.h`) from
//! `src/lib.rs` with cbindgen. The files are committed; cbindgen leaves them untouched when the
//! text is unchanged, so builds do not dirty the tree.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    match cbindgen::Builder::new().with_config(config).with_src(dir.join("src/lib.rs")).generate() {
        Ok(bindings) => {
            bindings.write_to_file(dir.join("include/memsilo.h"));
            // The Go module carries its own copy: a module fetched with `go get` has nothing
            // outside go-ffi/.
            let go = dir.join("../../go-ffi/include");
            if go.is_dir() {
                bindings.write_to_file(go.join("memsilo.h"));
            }
        }
        // A syntax error in lib.rs is reported by rustc itself with a better message.
        Err(e) => println!("cargo:warning=memsilo.h not regenerated: {e}"),
    }
}
