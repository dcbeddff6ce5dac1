package memsilo

import (
	"bytes"
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
