package memsilo

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestExportAndImportCopyANamespace(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "src", nil)).must(t)
	items := make([]StoreMemoryRequest, 0, 9)
	for i := 0; i < 9; i++ {
		items = append(items, StoreMemoryRequest{ID: "m" + string(rune('0'+i)), Content: "note " + string(rune('0'+i))})
	}
	of(db.StoreMemories(bg, "src", items)).must(t)
	var buf bytes.Buffer
	if err := db.ExportNamespace(bg, "src", &buf); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 10 {
		t.Fatalf("export lines: %d\n%s", n, buf.String())
	}
	of(db.CreateNamespace(bg, "dst", nil)).must(t)
	done := of(db.ImportNamespace(bg, "dst", bytes.NewReader(buf.Bytes()), 4)).must(t)
	if done.Memories != 9 {
		t.Fatalf("imported: %+v", done)
	}
	if m := of(db.GetMemory(bg, "dst", "m4")).must(t); m.Content != "note 4" {
		t.Fatalf("copy: %+v", m)
	}
	// The namespace line named the embedder, so the copy takes text as the source did.
	if _, err := db.StoreMemory(bg, "dst", StoreMemoryRequest{Content: "note 9"}); err != nil {
		t.Fatalf("text into the copy: %v", err)
	}
	_, err := db.ImportNamespace(bg, "dst", strings.NewReader("{\"kind\": \"memory\"}\nnot json\n"), 0)
	wantCode(t, err, CodeInvalidArgument)
	if !strings.Contains(err.Error(), "line 2: not JSON") && !strings.Contains(err.Error(), "line 1: id") {
		t.Fatalf("error names no line: %v", err)
	}
}

// importBadLine3500 imports 5,000 memory lines whose line 3,500 has a vector of the wrong
// size: the error names the line, and the three batches of 1,000 before its batch stay.
func importBadLine3500(t *testing.T, db *DB, ns string) {
	t.Helper()
	of(db.CreateNamespace(bg, ns, &NamespaceOptions{Dimensions: Ptr(uint32(3))})).must(t)
	var text strings.Builder
	for i := 1; i <= 5000; i++ {
		vector := fmt.Sprintf("[1, %d, 0]", i)
		if i == 3500 {
			vector = "[1]"
		}
		fmt.Fprintf(&text, "{\"kind\": \"memory\", \"id\": \"m%d\", \"content\": \"note %d\", \"vector\": %s}\n", i, i, vector)
	}
	done, err := db.ImportNamespace(bg, ns, strings.NewReader(text.String()), 1000)
	e := wantCode(t, err, CodeInvalidArgument)
	if e.Message != "line 3500: vector has 1 dimensions, namespace has 3" {
		t.Fatalf("error: %v", err)
	}
	// What the three batches before the failing one wrote, and the line, on the error and
	// as the summary returned with it.
	written := ImportSummary{Lines: 3000, Memories: 3000}
	if e.Line != 3500 || e.Imported == nil || *e.Imported != written || done != e.Imported {
		t.Fatalf("line %d, imported %+v, summary %+v", e.Line, e.Imported, done)
	}
	if info := of(db.GetNamespace(bg, ns)).must(t); info.MemoryCount != 3000 {
		t.Fatalf("memories kept: %d, want 3000", info.MemoryCount)
	}
}

func TestABadLineStopsAnImportKeepingTheBatchesBeforeIt(t *testing.T) {
	importBadLine3500(t, openTemp(t), "local")
	importBadLine3500(t, connectAdmin(t, startCargoServer(t)), "remote")
}
