package memsilo

import (
	"debug/elf"
	"os"
	"strings"
	"testing"
)

// The engine is linked statically: a Go program using this package needs no memsilo
// shared library at run time (only the system's libc, libm and libgcc_s).
func TestBinaryNeedsNoMemsiloSharedLibrary(t *testing.T) {
	f, err := elf.Open(os.Args[0])
	if err != nil {
		t.Skipf("not an ELF binary: %v", err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shared libraries: %v", libs)
	for _, lib := range libs {
		if strings.Contains(lib, "memsilo") {
			t.Fatalf("the test binary needs %s at run time", lib)
		}
	}
}
