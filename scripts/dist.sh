#!/usr/bin/env bash
# Builds every release artifact into DIST_DIR from ONE release build of the workspace.
# maturin (--zig, manylinux2014 = glibc 2.17) compiles the Python extension through a zig
# linker wrapper; the server, the Node addon and the C ABI are then compiled by cargo with
# exactly the environment maturin gave cargo (recorded by a `cargo` shim put first on PATH),
# so every crate they share with the extension is already built. (cargo keys its
# fingerprints on the linker path, and the wrapper's path differs between maturin and the
# cargo-zigbuild CLI, so running both would compile everything twice.)
#
# Both calls must also resolve the same features for the crates they share: by default cargo
# unifies features over the packages of one call only (memsilo-python alone enables other
# syn/serde features than memsilo-node + memsilo-ffi, and everything above them would be
# compiled twice), so both use workspace-wide feature unification. It is an unstable cargo
# setting; cargo-zigbuild, which maturin runs, already enables unstable settings for its own
# use (target-applies-to-host), and this script adds only the feature-unification one.
#
#   scripts/dist.sh DIST_DIR TOOLS_BIN     (make dist passes dist/ and the tools venv's bin)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dist=$1
tools=$2
export PATH="$tools:$PATH"   # maturin, and `python -m ziglang` for zig
: "${CARGO_TARGET_DIR:=$root/target}"
export CARGO_TARGET_DIR
triple=x86_64-unknown-linux-gnu
rel=$CARGO_TARGET_DIR/$triple/release
version=$(python3 scripts/version.py print)
stage=$CARGO_TARGET_DIR/dist-stage
rm -rf "$dist" "$stage"
mkdir -p "$dist" "$stage/shim"
t0=$(date +%s)

# The binaries link LMDB (third_party/lmdb-master3-sys), whose licence (the OpenLDAP Public
# License) asks binary redistributions to reproduce its copyright notice and licence: each
# binary artifact ships them in THIRD-PARTY-NOTICES. The wheel and the sdist carry it (and
# memsilo's LICENSE) as licence files (pyproject's license-files, PEP 639): copies in python/
# for maturin, git-ignored.
lmdb=third_party/lmdb-master3-sys/lmdb/libraries/liblmdb
{
    printf 'memsilo links LMDB (mdb.master3, patched: third_party/lmdb-master3-sys in the\n'
    printf 'source), distributed under the OpenLDAP Public License:\n\n'
    cat "$lmdb/COPYRIGHT"
    printf '\n'
    cat "$lmdb/LICENSE"
} > "$stage/THIRD-PARTY-NOTICES"
cp "$stage/THIRD-PARTY-NOTICES" LICENSE python/

# 1. The Python wheel (abi3, manylinux_2_17) and sdist. The shim records the environment of
#    maturin's compiling cargo call.
export __CARGO_TEST_CHANNEL_OVERRIDE_DO_NOT_USE_THIS=nightly
export CARGO_UNSTABLE_FEATURE_UNIFICATION=true CARGO_RESOLVER_FEATURE_UNIFICATION=workspace
real_cargo=$(command -v cargo)
printf '#!/bin/sh\ncase " $* " in *" rustc "*|*" build "*) env -0 > "%s" ;; esac\nexec "%s" "$@"\n' \
    "$stage/cargo.env" "$real_cargo" > "$stage/shim/cargo"
chmod +x "$stage/shim/cargo"
(cd python && PATH="$stage/shim:$PATH" maturin build --release --locked --zig --compatibility manylinux2014 -o "$dist")
(cd python && maturin sdist -o "$dist")
# maturin bundles the path dependencies it builds, but not an optional one of a dependency:
# memsilo-http names memsilo-cluster (its `cluster` feature), and cargo cannot load a
# workspace whose manifests name a path that is missing. Add that crate's tracked sources,
# and those of the patched crates the workspace's [patch.crates-io] names (third_party/).
sdist_dir=memsilo-$version
mkdir -p "$stage/sdist"
tar -C "$stage/sdist" -xzf "$dist/$sdist_dir.tar.gz"
git ls-files -z cluster third_party | grep -zv '^cluster/tests/' |
    xargs -0 -I{} cp --parents {} "$stage/sdist/$sdist_dir/"
tar -C "$stage/sdist" -czf "$dist/$sdist_dir.tar.gz" "$sdist_dir"
t1=$(date +%s)

# 2. The server, the Node addon and the C ABI: the same target, profile, linker and C compiler.
test -s "$stage/cargo.env" || { echo "dist.sh: maturin's cargo environment was not recorded" >&2; exit 1; }
mapfile -d '' maturin_env < "$stage/cargo.env"
env -i "${maturin_env[@]}" "$real_cargo" build --release --locked --target "$triple" \
    -p memsilo-http -p memsilo-node -p memsilo-ffi -p memsilo-dump-v0
t2=$(date +%s)

# 3. The server tarball.
name=memsilo-$version-linux-x86_64
mkdir -p "$stage/$name"
# memsilo-dump-v0 reads 0.1.0 data directories for `memsilo upgrade DIR`, which finds it here.
cp "$rel/memsilo" "$rel/memsilo-dump-v0" README.md CHANGELOG.md LICENSE "$stage/THIRD-PARTY-NOTICES" \
    "$stage/$name/"
tar -C "$stage" -czf "$dist/$name.tar.gz" "$name"

# 4. The static library and header for Go and C (debug info stripped: it is most of the size).
name=memsilo-ffi-$version-linux-x86_64
mkdir -p "$stage/$name/lib" "$stage/$name/include"
cp "$rel/libmemsilo_ffi.a" "$stage/$name/lib/"
strip --strip-debug "$stage/$name/lib/libmemsilo_ffi.a"
cp bindings/c/include/memsilo.h "$stage/$name/include/"
cp LICENSE CHANGELOG.md "$stage/THIRD-PARTY-NOTICES" "$stage/$name/"
cat > "$stage/$name/README.md" <<EOF
# memsilo $version: static library for Go and C (linux/amd64, glibc 2.17+)

Go (no Rust needed; any C compiler):

    mkdir -p /opt/memsilo && tar -xzf $name.tar.gz -C /opt/memsilo --strip-components=1
    go get github.com/memsilo/memsilo-go@v$version
    CGO_LDFLAGS="-L/opt/memsilo/lib" go build ./...

C:

    cc -I/opt/memsilo/include app.c /opt/memsilo/lib/libmemsilo_ffi.a -lm -ldl -lpthread
EOF
tar -C "$stage" -czf "$dist/$name.tar.gz" "$name"

# 5. npm: the platform package (the addon) and the main package, which selects it through
#    optionalDependencies (the napi-rs convention; added here, as \`napi prepublish\` does).
cp -r node/npm/linux-x64-gnu "$stage/npm-linux-x64-gnu"
cp "$rel/libmemsilo_node.so" "$stage/npm-linux-x64-gnu/memsilo.linux-x64-gnu.node"
cp LICENSE "$stage/THIRD-PARTY-NOTICES" "$stage/npm-linux-x64-gnu/"
(cd "$stage/npm-linux-x64-gnu" && npm pack --silent --pack-destination "$dist" >/dev/null)
mkdir -p "$stage/npm-memsilo"
cp -r node/index.js node/index.mjs node/index.d.ts node/bin node/README.md LICENSE "$stage/npm-memsilo/"
node -e '
  const fs = require("fs");
  const [src, dest, version] = process.argv.slice(1);
  const pkg = JSON.parse(fs.readFileSync(src, "utf8"));
  pkg.optionalDependencies = { "memsilo-linux-x64-gnu": version };
  delete pkg.devDependencies;
  delete pkg.scripts;
  fs.writeFileSync(dest, JSON.stringify(pkg, null, 2) + "\n");
' node/package.json "$stage/npm-memsilo/package.json" "$version"
(cd "$stage/npm-memsilo" && npm pack --silent --pack-destination "$dist" >/dev/null)
t3=$(date +%s)

echo "make dist: wheel+sdist $((t1 - t0)) s, server/addon/ffi $((t2 - t1)) s, packing $((t3 - t2)) s, total $((t3 - t0)) s"
(cd "$dist" && ls -l --block-size=K)
