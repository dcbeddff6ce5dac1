package memsilo

import (
	"fmt"
	"sync"
	"testing"
)

// Many goroutines share one DB (and one scoped DB made from it) under -race: every store
// lands exactly once and every goroutine recalls its own writes.
func TestConcurrentGoroutinesShareOneHandle(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "shared", nil)).must(t)
	key := of(db.CreateKey(bg, CreateKeyRequest{Name: "workers", Namespaces: []NamespaceGrant{{"shared", AccessWrite}}})).must(t)
	scoped := of(db.Scoped(key.Key)).must(t)
	defer scoped.Close()

	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			h := db
			if w%2 == 1 {
				h = scoped
			}
			agent := fmt.Sprintf("worker-%d", w)
			for i := 0; i < perWorker; i++ {
				_, err := h.StoreMemory(bg, "shared", StoreMemoryRequest{
					Content: fmt.Sprintf("note %d from %s", i, agent), AgentID: agent,
				})
				if err != nil {
					errs <- err
					return
				}
			}
			hits, err := h.Recall(bg, "shared", RecallRequest{Query: "note from " + agent, AgentID: agent, TopK: 100})
			if err != nil {
				errs <- err
				return
			}
			if len(hits) != perWorker {
				errs <- fmt.Errorf("%s recalled %d of its %d notes", agent, len(hits), perWorker)
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ns := of(db.GetNamespace(bg, "shared")).must(t); ns.MemoryCount != workers*perWorker {
		t.Fatalf("memory_count %d, want %d", ns.MemoryCount, workers*perWorker)
	}
}

// Close waits for calls in flight; calls after it fail cleanly instead of touching freed memory.
func TestCloseWhileOtherGoroutinesCall(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "docs", nil)).must(t)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if _, err := db.GetNamespace(bg, "docs"); err != nil {
					if err != ErrClosed {
						t.Errorf("unexpected error: %v", err)
					}
					return
				}
			}
		}()
	}
	db.Close()
	wg.Wait()
}
