package memsilo

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const testAdminKey = "test-admin-key-0123456789abcdef"

// TestMain lets this test binary double as a Go program serving memsilo through Serve
// (see startGoServer): a Go binary linking the static library needs nothing else to run.
func TestMain(m *testing.M) {
	if os.Getenv("MEMSILO_GO_SERVE") == "1" {
		os.Exit(Serve(strings.Fields(os.Getenv("MEMSILO_GO_SERVE_ARGS"))...))
	}
	os.Exit(m.Run())
}

var listeningLine = regexp.MustCompile(`listening on (http://\S+)`)

// startServer runs cmd (a memsilo server on 127.0.0.1, port 0), waits for its "listening"
// line on stderr and returns the URL; the process is stopped when the test ends.
func startServer(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	cmd.Env = append(append(os.Environ(), cmd.Env...), "MEMSILO_ADMIN_KEY="+testAdminKey)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listeningLine.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		close(urls)
	}()
	select {
	case url, ok := <-urls:
		if !ok {
			t.Fatalf("%s exited before listening", cmd.Path)
		}
		return url
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not print its listening line within 60 s", cmd.Path)
	}
	return ""
}

func serveArgs(t *testing.T) []string {
	return []string{"serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0"}
}

// startCargoServer runs the memsilo binary built by `cargo build -p memsilo-http`.
func startCargoServer(t *testing.T) string {
	bin, err := filepath.Abs(filepath.Join("..", "target", "debug", "memsilo"))
	if err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("CARGO_TARGET_DIR"); dir != "" {
		bin = filepath.Join(dir, "debug", "memsilo")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("server binary %s not built (run `cargo build -p memsilo-http --bin memsilo`, or `make test-go`)", bin)
	}
	return startServer(t, exec.Command(bin, serveArgs(t)...))
}

// startGoServer runs this test binary as a Go program calling memsilo.Serve.
func startGoServer(t *testing.T) string {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(cmd.Env, "MEMSILO_GO_SERVE=1", "MEMSILO_GO_SERVE_ARGS="+strings.Join(serveArgs(t), " "))
	return startServer(t, cmd)
}

func connectAdmin(t *testing.T, url string) *DB {
	t.Helper()
	db, err := Connect(url, testAdminKey)
	if err != nil {
		t.Fatalf("Connect(%s): %v", url, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSaaSFlowAgainstServer(t *testing.T) {
	url := startCargoServer(t)
	admin := connectAdmin(t, url)
	if id := of(admin.WhoAmI(bg)).must(t); id.Principal != "root" {
		t.Fatalf("admin key: %+v", id)
	}
	saasFlow(t, admin)
}

func TestConnectRefusesBadKeysAndDeadServers(t *testing.T) {
	url := startCargoServer(t)
	_, err := Connect(url, "msk_not_a_key")
	wantCode(t, err, CodeUnauthorized)
	_, err = Connect("not a url", testAdminKey)
	wantCode(t, err, CodeInvalidArgument)

	// A tenant's key used directly with Connect sees only its namespace.
	admin := connectAdmin(t, url)
	of(admin.CreateNamespace(bg, "tenant-acme", nil)).must(t)
	of(admin.CreateNamespace(bg, "tenant-globex", nil)).must(t)
	key := of(admin.CreateKey(bg, CreateKeyRequest{Name: "acme", Namespaces: []NamespaceGrant{{"tenant-acme", AccessWrite}}})).must(t)
	acme := of(Connect(url, key.Key)).must(t)
	defer acme.Close()
	of(acme.StoreMemory(bg, "tenant-acme", StoreMemoryRequest{Content: "over the wire", Embedding: []float32{0, 1}})).must(t)
	hits := of(acme.Recall(bg, "tenant-acme", RecallRequest{Vector: []float32{0, 1}, TopK: 1})).must(t)
	if len(hits) != 1 || hits[0].Content != "over the wire" {
		t.Fatalf("remote vector recall: %+v", hits)
	}
	_, err = acme.Recall(bg, "tenant-globex", RecallRequest{Query: "x"})
	if me := wantCode(t, err, CodeForbidden); me.Message != "Key not authorized for namespace tenant-globex" || me.Status != 403 {
		t.Fatalf("remote refusal: %+v", me)
	}

	// A port nothing listens on (a server we stopped) is an internal error, not a hang.
	dead := startCargoServerStopped(t)
	_, err = Connect(dead, testAdminKey)
	wantCode(t, err, CodeInternal)
	// The connection failure is the cause, in its own words.
	if cause := errors.Unwrap(err); cause == nil || !strings.Contains(cause.Error(), "refused") {
		t.Fatalf("cause of %v: %v", err, cause)
	}
}

// startCargoServerStopped starts a server, stops it, and returns its now-dead URL.
func startCargoServerStopped(t *testing.T) string {
	var url string
	t.Run("dead-server", func(t *testing.T) { url = startCargoServer(t) })
	if url == "" {
		t.Skip("no server binary")
	}
	return url
}

func TestGoProgramServesWithServe(t *testing.T) {
	url := startGoServer(t)
	admin := connectAdmin(t, url)
	ns := of(admin.CreateNamespace(bg, "served-by-go", nil)).must(t)
	if ns.Name != "served-by-go" {
		t.Fatalf("namespace: %+v", ns)
	}
	if list := of(admin.ListNamespaces(bg, nil)).must(t); list.TotalCount != 1 {
		t.Fatalf("list: %+v", list)
	}
	if code := Serve("no-such-command"); code != 2 {
		t.Fatalf("usage error exit code %d, want 2", code)
	}
}

// One remote DB shared by goroutines (under -race): every call lands, and a tenant over
// its qps limit gets rate_limited with a retry-after over the wire too.
func TestConcurrentCallsOverOneConnection(t *testing.T) {
	url := startCargoServer(t)
	admin := connectAdmin(t, url)
	of(admin.CreateNamespace(bg, "shared", nil)).must(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if _, err := admin.StoreMemory(bg, "shared", StoreMemoryRequest{Content: fmt.Sprintf("w%d-%d", w, i)}); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ns := of(admin.GetNamespace(bg, "shared")).must(t); ns.MemoryCount != 60 {
		t.Fatalf("memory_count %d, want 60", ns.MemoryCount)
	}

	slow := of(admin.CreateTenant(bg, "slow_co", &TenantOptions{Quotas: &QuotasPatch{QPSLimit: ptr[uint32](1)}})).must(t)
	of(admin.CreateNamespace(bg, "slow", &NamespaceOptions{TenantID: slow.ID})).must(t)
	key := of(admin.CreateKey(bg, CreateKeyRequest{Name: "slow", Namespaces: []NamespaceGrant{{"slow", AccessRead}}})).must(t)
	slowDB := of(Connect(url, key.Key)).must(t)
	defer slowDB.Close()
	var limited *Error
	for i := 0; i < 5 && limited == nil; i++ {
		if _, err := slowDB.Recall(bg, "slow", RecallRequest{Query: "x"}); err != nil {
			limited = wantCode(t, err, CodeRateLimited)
		}
	}
	if limited == nil || limited.RetryAfter <= 0 || limited.Status != 429 || limited.TenantID != slow.ID {
		t.Fatalf("remote rate limit: %+v", limited)
	}
}

// Connect with a comma-separated list of a cluster's servers skips one that cannot be
// reached; a bad entry is CodeInvalidArgument naming urls[i].
func TestConnectWithSeveralURLsSkipsADeadServer(t *testing.T) {
	url := startCargoServer(t)
	dead := startCargoServerStopped(t)
	db := connectAdmin(t, dead+","+url)
	of(db.CreateNamespace(bg, "several-urls", nil)).must(t)
	m := of(db.StoreMemory(bg, "several-urls", StoreMemoryRequest{Content: "through the second URL"})).must(t)
	if got := of(db.GetMemory(bg, "several-urls", m.ID)).must(t); got.Content != "through the second URL" {
		t.Fatalf("read back: %+v", got)
	}
	_, err := Connect(url+",nope", testAdminKey)
	if me := wantCode(t, err, CodeInvalidArgument); !strings.Contains(me.Message, "urls[1]") {
		t.Fatalf("bad entry: %+v", me)
	}
}
