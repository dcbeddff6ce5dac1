package memsilo

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
)

// ImportSummary is what an import wrote.
type ImportSummary struct {
	Lines     uint64 `json:"lines"`
	Memories  uint64 `json:"memories"`
	Entities  uint64 `json:"entities"`
	Relations uint64 `json:"relations"`
	Expired   uint64 `json:"expired"` // memories left out because they had expired
}

type exportPage struct {
	Lines      []json.RawMessage `json:"lines"`
	NextCursor *string           `json:"next_cursor"`
}

// ExportNamespace writes the namespace to w as JSON Lines (the namespace line, then graph
// entities and relations, then memories with ids and vectors), fetched a page at a time.
func (db *DB) ExportNamespace(ctx context.Context, namespace string, w io.Writer) error {
	out := bufio.NewWriterSize(w, 1<<20)
	var cursor *string
	for {
		var page exportPage
		args := map[string]any{"namespace": namespace, "cursor": cursor, "limit": 1000}
		if _, err := db.call(ctx, "export_namespace", args, &page); err != nil {
			return err
		}
		for _, line := range page.Lines {
			if _, err := out.Write(append(line, '\n')); err != nil {
				return err
			}
		}
		if page.NextCursor == nil {
			return out.Flush()
		}
		cursor = page.NextCursor
	}
}

// ImportNamespace reads JSON Lines from r into an existing namespace in batches of
// batchSize lines (0: 1000). Each batch of one kind is all or nothing and importing again
// is idempotent; a bad line is a CodeInvalidArgument error naming it ("line 12: ...").
func (db *DB) ImportNamespace(ctx context.Context, namespace string, r io.Reader, batchSize int) (*ImportSummary, error) {
	if batchSize <= 0 {
		batchSize = 1000
	}
	var total ImportSummary
	lines := make([]string, 0, batchSize)
	first, number := 1, 0
	started := false
	var embedder *string
	send := func() error {
		var done ImportSummary
		args := map[string]any{"namespace": namespace, "lines": lines, "first_line": first}
		if embedder != nil {
			args["embedder"] = *embedder
		}
		if _, err := db.call(ctx, "import_namespace", args, &done); err != nil {
			return err
		}
		total.Lines += done.Lines
		total.Memories += done.Memories
		total.Entities += done.Entities
		total.Relations += done.Relations
		total.Expired += done.Expired
		return nil
	}
	in := bufio.NewReaderSize(r, 1<<20)
	for {
		text, err := in.ReadString('\n')
		if text != "" {
			number++
			line := trimNewline(text)
			if isBlank(line) {
				if len(lines) == 0 {
					first = number + 1
				}
			} else {
				if !started {
					// The namespace line names its vectors' embedder; later batches pass it on.
					started = true
					embedder = exportEmbedder(line)
				}
				lines = append(lines, line)
			}
			if len(lines) >= batchSize {
				if err := send(); err != nil {
					return &total, err
				}
				lines, first = lines[:0], number+1
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return &total, err
		}
	}
	if len(lines) > 0 {
		if err := send(); err != nil {
			return &total, err
		}
	}
	return &total, nil
}

// exportEmbedder is the embedder an export's first line (its namespace line) names for the
// file's vectors; nil for files that do not say (their vectors are caller vectors).
func exportEmbedder(line string) *string {
	var head struct {
		Kind     string  `json:"kind"`
		Embedder *string `json:"embedder"`
	}
	if json.Unmarshal([]byte(line), &head) != nil || head.Kind != "namespace" {
		return nil // a bad line is named by the server
	}
	return head.Embedder
}

func trimNewline(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

func isBlank(s string) bool {
	for _, c := range s {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
