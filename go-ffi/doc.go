// Package memsilo is the Go client of memsilo, a multi-tenant memory store for AI
// applications. The same API runs the engine in-process ([Open]) or talks to a memsilo
// server ([Connect]); switch with one line.
//
//	db, err := memsilo.Open("./data")                     // in-process, root principal
//	db, err := memsilo.Connect("http://localhost:3300", "msk_...")   // remote
//	acme, err := db.Scoped("msk_...")                     // limited to what that key allows
//	_, err = db.CreateNamespace(ctx, "tenant-acme", nil)
//	_, err = acme.StoreMemory(ctx, "tenant-acme", memsilo.StoreMemoryRequest{Content: "Q3 roadmap"})
//	hits, err := acme.Recall(ctx, "tenant-acme", memsilo.RecallRequest{Query: "roadmap", TopK: 5})
//
// Every failure is a [*Error] whose Code is one of the wire codes of the error table (docs/src/api/errors.md); use
// [errors.As] to read it. An internal error caused by an I/O or storage failure unwraps
// ([errors.Unwrap], Error.Cause) to that failure's message. A DB is safe for concurrent use by
// many goroutines.
//
// The package links the memsilo C ABI statically, so programs using it need no shared
// library at run time. Building needs a C compiler and the static library libmemsilo_ffi.a
// for linux/amd64: the release artifact memsilo-ffi-<Version>-linux-x86_64.tar.gz holds it,
// and CGO_LDFLAGS="-L<dir>/lib" points the linker at it (no Rust needed). Inside the
// repository, `cargo build -p memsilo-ffi` builds it into target/debug, which is searched last.
package memsilo
