package memsilo

/*
#include <stdlib.h>
#include "memsilo.h"
*/
import "C"

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"unsafe"
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
// is idempotent; a bad line is a CodeInvalidArgument error naming it ("line 12: ..."), with
// the batches before it written. An error that stops the import is an *Error whose Imported
// is what was written before it (returned as the summary too) and whose Line is the line it
// names. In process the next batch is read while one is written; on a remote DB the lines go
// to the server as one streamed request body. ctx is checked between reads of r; an import
// cancelled there writes the batches already handed on.
func (db *DB) ImportNamespace(ctx context.Context, namespace string, r io.Reader, batchSize int) (*ImportSummary, error) {
	if batchSize < 0 {
		batchSize = 0
	}
	cns, err := cString("namespace", namespace)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cns))
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.h == nil {
		return nil, ErrClosed
	}
	var imp *C.memsilo_import
	var cerr *C.char
	if rc := C.memsilo_import_open(db.h, cns, C.size_t(batchSize), &imp, &cerr); rc != C.MEMSILO_OK {
		return nil, takeError(rc, cerr)
	}
	defer C.memsilo_import_close(imp)
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if rc := C.memsilo_import_feed(imp, (*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(n), &cerr); rc != C.MEMSILO_OK {
				return importStopped(takeError(rc, cerr))
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, rerr
		}
	}
	var cout *C.char
	if rc := C.memsilo_import_finish(imp, &cout, &cerr); rc != C.MEMSILO_OK {
		return importStopped(takeError(rc, cerr))
	}
	var done ImportSummary
	if _, err := decodeReply(takeString(cout), &done); err != nil {
		return nil, err
	}
	return &done, nil
}

// importStopped returns an import's error with what the import wrote before it (nil if the
// error does not say).
func importStopped(e *Error) (*ImportSummary, error) {
	return e.Imported, e
}
