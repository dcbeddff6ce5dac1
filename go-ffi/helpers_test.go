package memsilo

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// openTemp opens a fresh in-process database in a temporary directory.
func openTemp(t *testing.T) *DB {
	t.Helper()
	dir, err := os.MkdirTemp("", "memsilo-go-")
	if err != nil {
		t.Fatalf("MkdirTemp: %v", err)
	}
	db, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		db.Close()
		// Known issue: a purge the background worker began before Close may still be
		// finishing its online rewrite of a shared file, so the directory can briefly gain
		// a file while it is being removed. Retry instead of failing the test on cleanup.
		for i := 0; ; i++ {
			if err := os.RemoveAll(dir); err == nil || i == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return db
}

// result holds a call's two return values so that of(db.X(...)).must(t) reads in one line.
type result[T any] struct {
	v   T
	err error
}

func of[T any](v T, err error) result[T] { return result[T]{v, err} }

// must fails the test on an error and returns the value.
func (r result[T]) must(t testing.TB) T {
	t.Helper()
	if r.err != nil {
		t.Fatalf("unexpected error: %v", r.err)
	}
	return r.v
}

// wantCode asserts err is a *memsilo.Error with the code (read with errors.As) and returns it.
func wantCode(t *testing.T, err error, code Code) *Error {
	t.Helper()
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("want *memsilo.Error with code %s, got %T %v", code, err, err)
	}
	if me.Code != code {
		t.Fatalf("want code %s, got %s (%s)", code, me.Code, me.Message)
	}
	return me
}

func ptr[T any](v T) *T { return Ptr(v) }

var bg = context.Background()
