package memsilo

import (
	"context"
	"errors"
	"testing"
)

// openTemp opens a fresh in-process database in a temporary directory.
func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
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
