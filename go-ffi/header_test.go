package memsilo

import (
	"bytes"
	"os"
	"testing"
)

// The module's copy of memsilo.h (a module fetched with `go get` has nothing outside go-ffi/)
// is the header cbindgen generates for bindings/c; the memsilo-ffi build writes both.
func TestHeaderIsTheCABIHeader(t *testing.T) {
	want, err := os.ReadFile("../bindings/c/include/memsilo.h")
	if err != nil {
		t.Skipf("not inside the memsilo repository: %v", err)
	}
	got, err := os.ReadFile("include/memsilo.h")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("go-ffi/include/memsilo.h differs from bindings/c/include/memsilo.h: run `cargo build -p memsilo-ffi`")
	}
}
