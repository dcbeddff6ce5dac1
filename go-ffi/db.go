package memsilo

/*
// Where the linker finds libmemsilo_ffi.a (first match wins): CGO_LDFLAGS="-L<dir>" (the
// release artifact memsilo-ffi-<version>-linux-x86_64.tar.gz), lib/linux-amd64 (a module
// release that carries the library), ../target/debug (this repository's dev build).
#cgo CFLAGS: -I${SRCDIR}/include
#cgo linux,amd64 LDFLAGS: -L${SRCDIR}/lib/linux-amd64
#cgo LDFLAGS: -L${SRCDIR}/../target/debug -l:libmemsilo_ffi.a -lm -ldl -lpthread
#include <stdlib.h>
#include <string.h>
#include "memsilo.h"
*/
import "C"

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// DB is an open memsilo: in-process ([Open], [DB.Scoped]) or a remote server ([Connect]).
// It is safe for concurrent use; Close it when done.
type DB struct {
	mu sync.RWMutex // read-held by calls, write-held by Close
	h  *C.memsilo_handle
}

// OpenOption is a setting of Open.
type OpenOption func(*openSettings)

type openSettings struct {
	keyring *string
}

// WithKeyring opens with a keyring: a directory outside the data directory holding the
// encryption keys (created if missing), or "env:" for MEMSILO_KEY_<ID> variables. Without
// it, the MEMSILO_KEYRING setting is used, if any.
func WithKeyring(dir string) OpenOption {
	return func(s *openSettings) { s.keyring = &dir }
}

// Open opens (creating if needed) the data directory at path in this process, acting as
// the embedded owner (root). Two opens of one path in one process share one engine.
func Open(path string, opts ...OpenOption) (*DB, error) {
	var settings openSettings
	for _, o := range opts {
		o(&settings)
	}
	cpath, err := cString("path", path)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cpath))
	var h *C.memsilo_handle
	var cerr *C.char
	if settings.keyring == nil {
		if rc := C.memsilo_open(cpath, &h, &cerr); rc != C.MEMSILO_OK {
			return nil, takeError(rc, cerr)
		}
		return newDB(h), nil
	}
	ckeyring, err := cString("keyring", *settings.keyring)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(ckeyring))
	if rc := C.memsilo_open_with_keyring(cpath, ckeyring, &h, &cerr); rc != C.MEMSILO_OK {
		return nil, takeError(rc, cerr)
	}
	return newDB(h), nil
}

// Connect connects to a memsilo server at url (e.g. "http://127.0.0.1:3300") acting as
// apiKey. The key is checked at once (CodeUnauthorized if unknown or revoked); an
// unreachable server is CodeInternal. The returned DB has the same methods, results and
// errors as an in-process one.
//
// url may list the servers of one cluster, comma-separated
// ("http://10.0.0.1:3300,http://10.0.0.2:3300"): calls go to one of them and move to the
// next when it cannot be reached or answers 503, for reads and for stores with
// caller-chosen ids (any other write is never sent twice). A bad entry is
// CodeInvalidArgument naming urls[i].
func Connect(url, apiKey string) (*DB, error) {
	curl, err := cString("url", url)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(curl))
	ckey, err := cString("api_key", apiKey)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(ckey))
	var h *C.memsilo_handle
	var cerr *C.char
	if rc := C.memsilo_connect(curl, ckey, &h, &cerr); rc != C.MEMSILO_OK {
		return nil, takeError(rc, cerr)
	}
	return newDB(h), nil
}

func newDB(h *C.memsilo_handle) *DB {
	db := &DB{h: h}
	// A forgotten DB still releases its handle (and, with the last handle, the engine).
	runtime.SetFinalizer(db, (*DB).Close)
	return db
}

// Scoped returns a DB acting as apiKey: limited to what the key allows (in-process), or
// the same server with that key (remote). An unknown, expired or revoked key fails with
// CodeUnauthorized at once. The new DB is independent of db; close each.
func (db *DB) Scoped(apiKey string) (*DB, error) {
	ckey, err := cString("api_key", apiKey)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(ckey))
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.h == nil {
		return nil, ErrClosed
	}
	var h *C.memsilo_handle
	var cerr *C.char
	if rc := C.memsilo_scoped(db.h, ckey, &h, &cerr); rc != C.MEMSILO_OK {
		return nil, takeError(rc, cerr)
	}
	return newDB(h), nil
}

// Close releases the handle. Calls after Close fail with ErrClosed; closing twice is a no-op.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.h != nil {
		C.memsilo_close(db.h)
		db.h = nil
		runtime.SetFinalizer(db, nil)
	}
	return nil
}

// listed is what memsilo_call tells beside a bare-array list: the total, and where the next
// page starts (lists paged by cursor, when one follows).
type listed struct {
	TotalCount *uint64 `json:"total_count"`
	NextCursor *string `json:"next_cursor"`
}

// reply is memsilo_call's output: the result and, for bare-array lists, what listed holds.
type reply struct {
	Value json.RawMessage `json:"value"`
	listed
}

// call runs one operation of the core's operation table with args marshalled to JSON and
// decodes the result into out (if not nil). ctx is checked before the call; a call that
// has started runs to completion.
func (db *DB) call(ctx context.Context, op string, args any, out any) (listed, error) {
	if err := ctx.Err(); err != nil {
		return listed{}, err
	}
	argsJSON, err := json.Marshal(args)
	if err != nil {
		// JSON has no NaN or infinity: name the field that holds one, as the engine names
		// any other bad value.
		if field, why, ok := badValue(reflect.ValueOf(args), ""); ok {
			return listed{}, &Error{Code: CodeInvalidArgument, Status: 400, Field: field, Message: field + ": " + why}
		}
		return listed{}, &Error{Code: CodeInvalidArgument, Status: 400, Field: "args", Message: "args: " + err.Error()}
	}
	// json.Marshal writes a string that is not UTF-8 with U+FFFD in place of its bad bytes:
	// refuse it naming its field instead of storing other text than the caller's (a server
	// refuses such a request body too). Only a text holding that escape can hold one.
	if bytes.Contains(argsJSON, replacementChar) {
		if field, why, ok := badValue(reflect.ValueOf(args), ""); ok {
			return listed{}, &Error{Code: CodeInvalidArgument, Status: 400, Field: field, Message: field + ": " + why}
		}
	}
	cop, err := cString("op", op)
	if err != nil {
		return listed{}, err
	}
	defer C.free(unsafe.Pointer(cop))
	cargs := C.CString(string(argsJSON)) // JSON escapes NUL, so none is inside
	defer C.free(unsafe.Pointer(cargs))

	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.h == nil {
		return listed{}, ErrClosed
	}
	var cout, cerr *C.char
	if rc := C.memsilo_call(db.h, cop, cargs, &cout, &cerr); rc != C.MEMSILO_OK {
		return listed{}, takeError(rc, cerr)
	}
	return decodeReply(takeString(cout), out)
}

// recallVector is recall by a vector passed as raw floats (memsilo_recall_vector).
func (db *DB) recallVector(ctx context.Context, ns string, vector []float32, topK int, out any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(vector) == 0 {
		return &Error{Code: CodeInvalidArgument, Status: 400, Field: "vector", Message: "vector: must not be empty"}
	}
	if topK < 0 || topK > int(^uint32(0)>>1) {
		return &Error{Code: CodeInvalidArgument, Status: 400, Field: "top_k", Message: "top_k: out of range"}
	}
	// Named by its index, as a recall through JSON names it (the engine would say "vector").
	for i, f := range vector {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			field := fmt.Sprintf("vector[%d]", i)
			return &Error{Code: CodeInvalidArgument, Status: 400, Field: field, Message: field + ": must be a finite number"}
		}
	}
	var cns *C.char
	if ns != "" {
		var err error
		if cns, err = cString("namespace", ns); err != nil {
			return err
		}
		defer C.free(unsafe.Pointer(cns))
	}
	// The floats are read by C during the call only (cgo pins the slice for its duration).
	cvec := (*C.float)(unsafe.Pointer(&vector[0]))

	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.h == nil {
		return ErrClosed
	}
	var cout, cerr *C.char
	rc := C.memsilo_recall_vector(db.h, cns, cvec, C.size_t(len(vector)), C.uint32_t(topK), &cout, &cerr)
	if rc != C.MEMSILO_OK {
		return takeError(rc, cerr)
	}
	_, err := decodeReply(takeString(cout), out)
	return err
}

func decodeReply(text []byte, out any) (listed, error) {
	var r reply
	if err := json.Unmarshal(text, &r); err != nil {
		return listed{}, &Error{Code: CodeInternal, Status: 500, Message: "undecodable reply: " + err.Error()}
	}
	if out != nil {
		if err := json.Unmarshal(r.Value, out); err != nil {
			return listed{}, &Error{Code: CodeInternal, Status: 500, Message: "undecodable reply: " + err.Error()}
		}
	}
	return r.listed, nil
}

// cString copies s to C memory (free with C.free). A NUL inside s would silently cut it
// short in C, so it is refused.
func cString(field, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, &Error{Code: CodeInvalidArgument, Status: 400, Field: field, Message: field + ": must not contain NUL"}
	}
	return C.CString(s), nil
}

// takeString copies a string returned by the C ABI and frees it.
func takeString(s *C.char) []byte {
	if s == nil {
		return nil
	}
	defer C.memsilo_string_free(s)
	return C.GoBytes(unsafe.Pointer(s), C.int(C.strlen(s)))
}

func takeError(rc C.int32_t, body *C.char) *Error {
	return newError(int(rc), takeString(body))
}

// Operations lists every operation name of the core's operation table (the names
// memsilo's other faces use too).
func Operations() ([]string, error) {
	var cout *C.char
	if rc := C.memsilo_operations(&cout); rc != C.MEMSILO_OK {
		return nil, newError(int(rc), nil)
	}
	var ops []string
	if err := json.Unmarshal(takeString(cout), &ops); err != nil {
		return nil, err
	}
	return ops, nil
}

// Serve runs the memsilo command line in this process, as the memsilo binary would, and
// returns its exit code; args exclude the program name, e.g.
// Serve("serve", "--data", "./data", "--listen", "127.0.0.1:3300"). "serve" blocks until
// the process receives SIGINT or SIGTERM.
func Serve(args ...string) int {
	argv := make([]*C.char, 0, len(args)+1)
	argv = append(argv, C.CString("memsilo"))
	for _, a := range args {
		argv = append(argv, C.CString(a))
	}
	defer func() {
		for _, p := range argv {
			C.free(unsafe.Pointer(p))
		}
	}()
	// The array holds C pointers only, so C may read it from Go memory during the call.
	return int(C.memsilo_serve(C.int(len(argv)), (**C.char)(unsafe.Pointer(&argv[0]))))
}

// replacementChar is how json.Marshal writes U+FFFD in place of bytes that are not UTF-8 (an
// escape; a U+FFFD of the string itself is written as it is).
var replacementChar = []byte(`\ufffd`)

// badValue finds the first value in v that JSON cannot carry as given: a NaN or infinity,
// or a string (or map key) that is not UTF-8. It returns the wire path of its field
// ("importance", "metadata.score", "memories[1].content") and why.
func badValue(v reflect.Value, path string) (string, string, bool) {
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		return path, "must be a finite number", math.IsNaN(f) || math.IsInf(f, 0)
	case reflect.String:
		return path, "must be valid UTF-8", !utf8.ValidString(v.String())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return "", "", false
		}
		return badValue(v.Elem(), path)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "", "", false // []byte is sent as base64
		}
		for i := 0; i < v.Len(); i++ {
			if p, why, ok := badValue(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, why, true
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			name := join(fmt.Sprint(k.Interface()))
			if k.Kind() == reflect.String && !utf8.ValidString(k.String()) {
				return name, "must be valid UTF-8", true
			}
			if p, why, ok := badValue(v.MapIndex(k), name); ok {
				return p, why, true
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			fieldPath := path
			if !f.Anonymous || name != "" {
				if name == "" {
					name = f.Name
				}
				fieldPath = join(name)
			}
			if p, why, ok := badValue(v.Field(i), fieldPath); ok {
				return p, why, true
			}
		}
	}
	return "", "", false
}
