package memsilo

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Code is a stable error code, as on the wire (the "error" field of the HTTP error body).
type Code string

// The error codes, one per row of the error table (docs/src/api/errors.md).
const (
	CodeInvalidArgument  Code = "invalid_argument"   // validation failed (the message names the field)
	CodeUnauthorized     Code = "unauthorized"       // missing, malformed, unknown, expired or revoked key
	CodeForbidden        Code = "forbidden"          // valid key, not allowed here
	CodeNotFound         Code = "not_found"          // tenant, member, key, memory, entity not found
	CodeConflict         Code = "conflict"           // duplicate name, tenant has children, member exists
	CodeQuotaExceeded    Code = "quota_exceeded"     // a limit would be exceeded; nothing was written
	CodeRateLimited      Code = "rate_limited"       // over the tenant's qps limit; see RetryAfter
	CodePayloadTooLarge  Code = "payload_too_large"  // body or field beyond the documented limits
	CodeInternal         Code = "internal"           // a bug or an environment failure
	CodeMethodNotAllowed Code = "method_not_allowed" // an HTTP method the route does not take
)

// cCodes maps the C ABI's integer codes (memsilo.h's MEMSILO_*) to wire codes.
var cCodes = [...]Code{"", CodeInvalidArgument, CodeUnauthorized, CodeForbidden, CodeNotFound,
	CodeConflict, CodeQuotaExceeded, CodeRateLimited, CodePayloadTooLarge, CodeInternal,
	CodeMethodNotAllowed}

// Error is every failure memsilo reports, in process and remote alike.
//
//	var me *memsilo.Error
//	if errors.As(err, &me) && me.Code == memsilo.CodeForbidden { ... }
type Error struct {
	Code       Code          // the stable code
	Message    string        // human-readable, e.g. "Key not authorized for namespace tenant-acme"
	Status     int           // the HTTP status of the code (403 for forbidden, ...)
	RetryAfter time.Duration // for CodeRateLimited: when a retry would be admitted
	Field      string        // for CodeInvalidArgument and CodePayloadTooLarge: the field
	Namespace  string        // for namespace refusals: the namespace asked for
	TenantID   string        // for quota and rate errors: the tenant whose limit binds
	Line       uint64        // the line of an import's text the error names ("line 12: ..."), or 0
	// Imported is, for an import that stopped, what it wrote before the failure (the batches
	// before the failing one); nil for any other error.
	Imported *ImportSummary
	// Cause is the failure underneath an internal error (an I/O or storage error, in its
	// own words), or nil; its own Unwrap gives the next one. errors.Unwrap(err) returns it.
	Cause error
}

// Unwrap returns the failure underneath, so errors.Unwrap and %w-style chains reach it.
func (e *Error) Unwrap() error { return e.Cause }

// causeError is one link of an error's cause chain: a message and the next link.
type causeError struct {
	message string
	next    error
}

func (c *causeError) Error() string { return c.message }
func (c *causeError) Unwrap() error { return c.next }

// causeChain links the error body's causes (nearest first); nil when there are none.
func causeChain(causes []string) error {
	var chain error
	for i := len(causes) - 1; i >= 0; i-- {
		chain = &causeError{message: causes[i], next: chain}
	}
	return chain
}

func (e *Error) Error() string {
	return fmt.Sprintf("memsilo: %s: %s", e.Code, e.Message)
}

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, &memsilo.Error{Code: memsilo.CodeNotFound}) works.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// ErrClosed is returned by calls on a DB after Close.
var ErrClosed = errors.New("memsilo: DB is closed")

// errorBody is the HTTP error JSON as the C ABI returns it.
type errorBody struct {
	Error      Code           `json:"error"`
	Message    string         `json:"message"`
	Code       int            `json:"code"`
	RetryAfter int64          `json:"retry_after"`
	Field      string         `json:"field"`
	Namespace  string         `json:"namespace"`
	TenantID   string         `json:"tenant_id"`
	Line       uint64         `json:"line"`
	Imported   *ImportSummary `json:"imported"`
	Causes     []string       `json:"causes"`
}

// newError builds an *Error from a C return code and the error body (which may be empty).
func newError(rc int, body []byte) *Error {
	var b errorBody
	if err := json.Unmarshal(body, &b); err != nil || b.Error == "" {
		b.Error = CodeInternal
		if rc > 0 && rc < len(cCodes) {
			b.Error = cCodes[rc]
		}
		if b.Message == "" {
			b.Message = fmt.Sprintf("error %d without a body", rc)
		}
	}
	return &Error{
		Code:       b.Error,
		Message:    b.Message,
		Status:     b.Code,
		RetryAfter: time.Duration(b.RetryAfter) * time.Second,
		Field:      b.Field,
		Namespace:  b.Namespace,
		TenantID:   b.TenantID,
		Line:       b.Line,
		Imported:   b.Imported,
		Cause:      causeChain(b.Causes),
	}
}
