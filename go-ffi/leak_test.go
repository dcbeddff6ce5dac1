package memsilo

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

// rssKiB reads this process's resident set size from /proc (Linux).
func rssKiB(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("VmRSS not found")
	return 0
}

// 10,000 iterations of successful and failing calls (results and error bodies crossing the
// boundary, scoped handles made and closed) keep the resident set flat: every string and
// handle the C ABI returns is freed.
func TestTenThousandCallsDoNotLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	db := openTemp(t)
	of(db.CreateNamespace(bg, "docs", nil)).must(t)
	key := of(db.CreateKey(bg, CreateKeyRequest{Name: "reader", Namespaces: []NamespaceGrant{{"docs", AccessRead}}})).must(t)
	id := of(db.StoreMemory(bg, "docs", StoreMemoryRequest{Content: "the quarterly roadmap", Embedding: nil})).must(t).ID

	iteration := func(i int) {
		of(db.GetMemory(bg, "docs", id)).must(t)
		of(db.Recall(bg, "docs", RecallRequest{Query: "roadmap", TopK: 3})).must(t)
		if _, err := db.GetNamespace(bg, "missing"); err == nil {
			t.Fatal("missing namespace found")
		}
		if i%10 == 0 {
			s := of(db.Scoped(key.Key)).must(t)
			if _, err := s.StoreMemory(bg, "docs", StoreMemoryRequest{Content: "denied"}); err == nil {
				t.Fatal("read key wrote")
			}
			s.Close()
		}
	}
	settle := func() int64 {
		runtime.GC()
		debug.FreeOSMemory()
		return rssKiB(t)
	}
	for i := 0; i < 1000; i++ { // warm up caches and allocator arenas
		iteration(i)
	}
	before := settle()
	const n = 10_000
	for i := 0; i < n; i++ {
		iteration(i)
	}
	after := settle()
	growth := after - before
	t.Logf("RSS before %d KiB, after %d iterations %d KiB (growth %d KiB, %.1f bytes/iteration)",
		before, n, after, growth, float64(growth*1024)/n)
	// A leak of one result string per iteration (~400 bytes) would add ~4 MiB; the bound is
	// generous because allocator arenas and Go's heap move by whole megabytes.
	if growth > 16*1024 {
		t.Fatalf("RSS grew by %d KiB over %d iterations", growth, n)
	}
}
