package memsilo

// Version is the memsilo release this module belongs to; the static library it links
// (libmemsilo_ffi.a, from the release artifact memsilo-ffi-<Version>-linux-x86_64.tar.gz)
// must be the same release. scripts/version.py keeps it equal to the repository's VERSION.
const Version = "0.1.0"
