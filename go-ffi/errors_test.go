package memsilo

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestErrorCodesReachGoAsTypedErrors(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "docs", nil)).must(t)

	_, err := db.CreateNamespace(bg, "docs", nil)
	if me := wantCode(t, err, CodeConflict); me.Status != 409 {
		t.Fatalf("conflict status: %+v", me)
	}
	// exist_ok turns the duplicate into the existing namespace.
	if ns := of(db.CreateNamespace(bg, "docs", &NamespaceOptions{ExistOK: true})).must(t); ns.Name != "docs" {
		t.Fatalf("exist_ok: %+v", ns)
	}

	_, err = db.CreateNamespace(bg, "no spaces allowed", nil)
	if me := wantCode(t, err, CodeInvalidArgument); me.Field != "name" || me.Status != 400 {
		t.Fatalf("invalid name: %+v", me)
	}

	_, err = db.GetMemory(bg, "docs", "0190f5c2-0000-7000-8000-000000000000")
	if me := wantCode(t, err, CodeNotFound); me.Status != 404 {
		t.Fatalf("missing memory: %+v", me)
	}
	_, err = db.GetTenant(bg, "0190f5c2-0000-7000-8000-000000000000")
	wantCode(t, err, CodeNotFound)

	_, err = db.Scoped("msk_this_is_not_a_key")
	wantCode(t, err, CodeUnauthorized)

	_, err = db.StoreMemory(bg, "docs", StoreMemoryRequest{Content: "x", Importance: ptr(1.5)})
	if me := wantCode(t, err, CodeInvalidArgument); me.Field != "importance" {
		t.Fatalf("importance out of range: %+v", me)
	}
	_, err = db.BatchForget(bg, "docs", ForgetRequest{})
	wantCode(t, err, CodeInvalidArgument)

	// Quotas: a tenant limited to one namespace cannot create a second; nothing is created.
	tenant := of(db.CreateTenant(bg, "small_co", &TenantOptions{Quotas: &QuotasPatch{MaxNamespaces: ptr[uint32](1)}})).must(t)
	of(db.CreateNamespace(bg, "small-1", &NamespaceOptions{TenantID: tenant.ID})).must(t)
	_, err = db.CreateNamespace(bg, "small-2", &NamespaceOptions{TenantID: tenant.ID})
	if me := wantCode(t, err, CodeQuotaExceeded); me.TenantID != tenant.ID || me.Status != 403 {
		t.Fatalf("quota: %+v", me)
	}
	_, err = db.GetNamespace(bg, "small-2")
	wantCode(t, err, CodeNotFound)

	// Rate limit: a tenant allowed 1 query per second gets rate_limited with a retry-after.
	slow := of(db.CreateTenant(bg, "slow_co", &TenantOptions{Quotas: &QuotasPatch{QPSLimit: ptr[uint32](1)}})).must(t)
	of(db.CreateNamespace(bg, "slow", &NamespaceOptions{TenantID: slow.ID})).must(t)
	key := of(db.CreateKey(bg, CreateKeyRequest{Name: "slow", Namespaces: []NamespaceGrant{{"slow", AccessRead}}})).must(t)
	slowDB := of(db.Scoped(key.Key)).must(t)
	defer slowDB.Close()
	// Read access only: writing is forbidden (this also spends the one query of this second).
	_, err = slowDB.StoreMemory(bg, "slow", StoreMemoryRequest{Content: "x"})
	wantCode(t, err, CodeForbidden)
	var limited *Error
	for i := 0; i < 5 && limited == nil; i++ {
		if _, err := slowDB.Recall(bg, "slow", RecallRequest{Query: "x"}); err != nil {
			limited = wantCode(t, err, CodeRateLimited)
		}
	}
	if limited == nil || limited.RetryAfter <= 0 || limited.Status != 429 {
		t.Fatalf("rate limit: %+v", limited)
	}
}

func TestCanceledContextStopsTheCallBeforeItStarts(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "docs", nil)).must(t)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := db.StoreMemory(ctx, "docs", StoreMemoryRequest{Content: "never stored"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if _, err := db.Recall(ctx, "docs", RecallRequest{Vector: []float32{1, 0}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("vector recall: want context.Canceled, got %v", err)
	}
	if ns := of(db.GetNamespace(bg, "docs")).must(t); ns.MemoryCount != 0 {
		t.Fatalf("a canceled store wrote anyway: %+v", ns)
	}
}

func TestClosedDBFailsWithErrClosed(t *testing.T) {
	db := openTemp(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := db.ListNamespaces(bg, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
	if _, err := db.Scoped("msk_x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Scoped after Close: want ErrClosed, got %v", err)
	}
}

// A NUL inside a Go string would cut it short in C; it is refused instead.
func TestNULInStringsIsInvalidArgument(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "a", nil)).must(t)
	_, err := db.Recall(bg, "a\x00b", RecallRequest{Vector: []float32{1}})
	if me := wantCode(t, err, CodeInvalidArgument); me.Field != "namespace" {
		t.Fatalf("NUL namespace: %+v", me)
	}
	_, err = db.Scoped("msk_\x00")
	wantCode(t, err, CodeInvalidArgument)
	_, err = Open(t.TempDir() + "\x00x")
	wantCode(t, err, CodeInvalidArgument)
	// In JSON arguments a NUL is just a character: this names a namespace that does not exist.
	_, err = db.GetNamespace(bg, "a\x00b")
	wantCode(t, err, CodeNotFound)
}

// JSON has no NaN or infinity: such a number is refused naming its field, nothing is written.
func TestNaNAndInfinityAreRefusedNamingTheirField(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "nan", nil)).must(t)
	for want, call := range map[string]func() error{
		"importance": func() error {
			_, err := db.StoreMemory(bg, "nan", StoreMemoryRequest{Content: "x", Importance: ptr(math.NaN())})
			return err
		},
		"metadata.score.raw": func() error {
			meta := map[string]any{"score": map[string]any{"raw": math.Inf(-1)}}
			_, err := db.StoreMemory(bg, "nan", StoreMemoryRequest{Content: "x", Metadata: meta})
			return err
		},
		"memories[1].importance": func() error {
			batch := []StoreMemoryRequest{{Content: "a"}, {Content: "b", Importance: ptr(math.Inf(1))}}
			_, err := db.StoreMemories(bg, "nan", batch)
			return err
		},
		// A vector-only recall passes its floats without JSON: named by index all the same.
		"vector[1]": func() error {
			_, err := db.Recall(bg, "nan", RecallRequest{Vector: []float32{0.5, float32(math.NaN())}})
			return err
		},
		"embedding[0]": func() error {
			_, err := db.StoreMemory(bg, "nan", StoreMemoryRequest{Content: "x", Embedding: []float32{float32(math.Inf(-1))}})
			return err
		},
	} {
		me := wantCode(t, call(), CodeInvalidArgument)
		// (A vector-only recall's NaN used to reach the engine as JSON null: "vector[1]:
		// invalid type: null, expected f32".)
		if me.Field != want || me.Status != 400 || me.Message != want+": must be a finite number" {
			t.Fatalf("%s: %+v", want, me)
		}
	}
	if n := of(db.CountMemories(bg, "nan", nil)).must(t); n != 0 {
		t.Fatalf("%d memories written", n)
	}
}

// json.Marshal writes a string that is not UTF-8 with U+FFFD in place of its bad bytes: such
// a string is refused naming its field instead of storing other text than the caller's.
func TestStringsThatAreNotUTF8AreRefusedNamingTheirField(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "utf", nil)).must(t)
	for want, call := range map[string]func() error{
		"content": func() error {
			_, err := db.StoreMemory(bg, "utf", StoreMemoryRequest{Content: "bad \xff text"})
			return err
		},
		"tags[1]": func() error {
			_, err := db.StoreMemory(bg, "utf", StoreMemoryRequest{Content: "x", Tags: []string{"ok", "\xc3"}})
			return err
		},
		"metadata.note.\xfe": func() error {
			meta := map[string]any{"note": map[string]any{"\xfe": 1}}
			_, err := db.StoreMemory(bg, "utf", StoreMemoryRequest{Content: "x", Metadata: meta})
			return err
		},
		"memories[1].agent_id": func() error {
			batch := []StoreMemoryRequest{{Content: "a"}, {Content: "b", AgentID: "\x80"}}
			_, err := db.StoreMemories(bg, "utf", batch)
			return err
		},
		"query": func() error {
			_, err := db.Recall(bg, "utf", RecallRequest{Query: "half \xe2\x82"})
			return err
		},
	} {
		me := wantCode(t, call(), CodeInvalidArgument)
		if me.Field != want || me.Status != 400 || me.Message != want+": must be valid UTF-8" {
			t.Fatalf("%q: %+v", want, me)
		}
	}
	if n := of(db.CountMemories(bg, "utf", nil)).must(t); n != 0 {
		t.Fatalf("%d memories written", n)
	}
	// U+FFFD itself is text like any other.
	m := of(db.StoreMemory(bg, "utf", StoreMemoryRequest{ID: "fine", Content: "\ufffd ok \u00e9"})).must(t)
	if got := of(db.GetMemory(bg, "utf", m.ID)).must(t); got.Content != "\ufffd ok \u00e9" {
		t.Fatalf("content %q", got.Content)
	}
}

func TestAnIOFailureIsTheCauseOfTheInternalError(t *testing.T) {
	dir := t.TempDir()
	// The lock file's place is taken by a directory: opening the data directory fails (EISDIR).
	if err := os.Mkdir(filepath.Join(dir, "LOCK"), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir)
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded over a LOCK directory")
	}
	me := wantCode(t, err, CodeInternal)
	cause := errors.Unwrap(err)
	if cause == nil || !strings.HasPrefix(cause.Error(), "Is a directory (os error ") {
		t.Fatalf("cause of %v: %v", err, cause)
	}
	if me.Cause != cause || me.Message != "internal error: io: "+cause.Error() || errors.Unwrap(cause) != nil {
		t.Fatalf("cause chain: %+v", me)
	}
	// errors.Is and errors.As still see the memsilo error through the chain's head.
	if !errors.Is(err, &Error{Code: CodeInternal}) {
		t.Fatal("errors.Is by code")
	}
}

func TestErrorsWithoutAFailureUnderneathHaveNoCause(t *testing.T) {
	db := openTemp(t)
	_, err := db.GetNamespace(bg, "missing")
	if me := wantCode(t, err, CodeNotFound); me.Cause != nil || errors.Unwrap(err) != nil {
		t.Fatalf("cause: %+v", me)
	}
}
