//! The C ABI of memsilo: an opaque handle over [`memsilo::api::Backend`] and one generic
//! `memsilo_call(op, args_json)` entry, so C callers (and the Go module on top) reach every
//! operation of API.md with the same names, arguments, results and errors as the other faces.
//!
//! Thin by design: each function converts its arguments, calls the backend, and maps the
//! error. Conventions (ownership, error bodies) are stated in the header's preamble
//! (`cbindgen.toml`) and on each function below; `include/memsilo.h` is generated from this file.

use std::ffi::{c_char, c_int, CString};

use memsilo::api::Importer;
use memsilo::api::{Backend, Reply, Request};
use memsilo::Error;
use serde_json::{json, Value};

mod boundary;

use boundary::{clear_out, guard, into_c_string, optional_str, required_str};

/// The library's Rust allocations go to mimalloc, as the `memsilo` binary's do (README,
/// "Allocator"). The caller's own `malloc` is untouched: strings this library returns are
/// freed by `memsilo_string_free`, never by `free`. Without the default feature `mimalloc`
/// (as `make test-go`'s valgrind leak check builds it) they use the system allocator, which
/// valgrind can see.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Success.
pub const MEMSILO_OK: i32 = 0;
/// Validation failed; the message names the field.
pub const MEMSILO_INVALID_ARGUMENT: i32 = 1;
/// Missing, malformed, unknown, expired or revoked key.
pub const MEMSILO_UNAUTHORIZED: i32 = 2;
/// The key is valid but not allowed here (also: a namespace the key cannot see).
pub const MEMSILO_FORBIDDEN: i32 = 3;
/// Tenant, member, key, memory or entity not found.
pub const MEMSILO_NOT_FOUND: i32 = 4;
/// Duplicate name, tenant with children, member already exists.
pub const MEMSILO_CONFLICT: i32 = 5;
/// A storage, member or namespace limit would be exceeded; nothing was written.
pub const MEMSILO_QUOTA_EXCEEDED: i32 = 6;
/// Over the tenant's queries-per-second limit (the error body carries `retry_after`).
pub const MEMSILO_RATE_LIMITED: i32 = 7;
/// Body or field beyond the documented limits.
pub const MEMSILO_PAYLOAD_TOO_LARGE: i32 = 8;
/// A bug or an environment failure; never a crash.
pub const MEMSILO_INTERNAL: i32 = 9;
/// An HTTP method the route does not take (only a server answers it).
pub const MEMSILO_METHOD_NOT_ALLOWED: i32 = 10;

/// An open memsilo: in-process (`memsilo_open`, `memsilo_scoped`) or a remote server
/// (`memsilo_connect`). Opaque to C; safe to share between threads.
pub struct MemsiloHandle {
    backend: Box<dyn Backend>,
}

fn hand_out(backend: Box<dyn Backend>, out: *mut *mut MemsiloHandle) {
    // SAFETY: `out` was checked non-NULL by `clear_out` before the backend was made.
    unsafe { *out = Box::into_raw(Box::new(MemsiloHandle { backend })) };
}

/// Opens (creating if needed) the data directory at `path` in this process, acting as the
/// embedded owner (root). Two opens of one path share one engine.
///
/// On success `*out` receives a handle to release with `memsilo_close`.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` and `err_json` are writable (`err_json` may be NULL).
#[no_mangle]
pub unsafe extern "C" fn memsilo_open(
    path: *const c_char,
    out: *mut *mut MemsiloHandle,
    err_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller's contract above, with no keyring.
    unsafe { memsilo_open_with_keyring(path, std::ptr::null(), out, err_json) }
}

/// [`memsilo_open`] with a keyring: `keyring` is a directory outside the data directory
/// holding the encryption keys (created if missing), or `"env:"` for `MEMSILO_KEY_<ID>`
/// variables; NULL means none (the `MEMSILO_KEYRING` setting, if any). A keyring inside the
/// data directory is `MEMSILO_INVALID_ARGUMENT` naming `keyring`.
///
/// # Safety
/// `path` is a NUL-terminated string, `keyring` one or NULL; `out` and `err_json` as in
/// `memsilo_open`.
#[no_mangle]
pub unsafe extern "C" fn memsilo_open_with_keyring(
    path: *const c_char,
    keyring: *const c_char,
    out: *mut *mut MemsiloHandle,
    err_json: *mut *mut c_char,
) -> i32 {
    guard(err_json, || {
        // SAFETY: the caller's contract above.
        unsafe { clear_out(out, "out") }?;
        let path = unsafe { required_str(path, "path") }?;
        let keyring = unsafe { optional_str(keyring, "keyring") }?;
        let root = memsilo_http::bindings::open(path.as_ref(), keyring.map(Into::into))?;
        hand_out(Box::new(root), out);
        Ok(())
    })
}

/// Connects to a memsilo server at `url` (e.g. `"http://127.0.0.1:3300"`) acting as
/// `api_key`. The key is checked at once: an unknown or revoked key is
/// `MEMSILO_UNAUTHORIZED`; an unreachable server is `MEMSILO_INTERNAL` saying so. Calls on
/// the handle block until the server answers.
///
/// `url` may list the servers of one cluster, comma-separated
/// (`"http://a:3300,http://b:3300"`): calls go to one of them and move to the next when it
/// cannot be reached or answers 503, for reads and for stores with caller-chosen ids (any
/// other write is never sent twice). A bad entry is `MEMSILO_INVALID_ARGUMENT` naming
/// `urls[i]`.
///
/// On success `*out` receives a handle to release with `memsilo_close`.
///
/// # Safety
/// `url` and `api_key` are NUL-terminated strings; `out` and `err_json` as in `memsilo_open`.
#[no_mangle]
pub unsafe extern "C" fn memsilo_connect(
    url: *const c_char,
    api_key: *const c_char,
    out: *mut *mut MemsiloHandle,
    err_json: *mut *mut c_char,
) -> i32 {
    guard(err_json, || {
        // SAFETY: the caller's contract above.
        unsafe { clear_out(out, "out") }?;
        let url = unsafe { required_str(url, "url") }?;
        let api_key = unsafe { required_str(api_key, "api_key") }?;
        hand_out(Box::new(memsilo_http::Client::connect(url, api_key)?), out);
        Ok(())
    })
}

/// A handle acting as `api_key`: on an in-process handle, limited to what the key allows
/// (fails with `MEMSILO_UNAUTHORIZED` at once for an unknown, expired or revoked key); on a
/// remote handle, the same server with that key. The new handle is independent of `h`
/// (close each with `memsilo_close`).
///
/// # Safety
/// `h` is a live handle; `api_key` is a NUL-terminated string; `out` and `err_json` as in
/// `memsilo_open`.
#[no_mangle]
pub unsafe extern "C" fn memsilo_scoped(
    h: *const MemsiloHandle,
    api_key: *const c_char,
    out: *mut *mut MemsiloHandle,
    err_json: *mut *mut c_char,
) -> i32 {
    guard(err_json, || {
        // SAFETY: the caller's contract above.
        unsafe { clear_out(out, "out") }?;
        let h = unsafe { handle(h) }?;
        let api_key = unsafe { required_str(api_key, "api_key") }?;
        hand_out(h.backend.scoped(api_key)?, out);
        Ok(())
    })
}

/// Runs one operation: `op` is an operation name of API.md (`"create_namespace"`,
/// `"store_memory"`, `"recall"`, ... — `memsilo_operations` lists them all) and `args_json`
/// its arguments as a JSON object with the wire field names (NULL means `{}`).
///
/// On success `*out_json` receives
/// `{"value": <result>, "total_count": <n or null>, "next_cursor": <text or null>}`;
/// `total_count` is set for the list operations whose value is a bare array
/// (`list_namespaces`, `list_keys`), `next_cursor` for `list_namespaces` when another page
/// follows (pass it as `cursor`). Free it with `memsilo_string_free`.
///
/// # Safety
/// `h` is a live handle; `op` and `args_json` (may be NULL) are NUL-terminated strings;
/// `out_json` is writable; `err_json` is writable or NULL.
#[no_mangle]
pub unsafe extern "C" fn memsilo_call(
    h: *const MemsiloHandle,
    op: *const c_char,
    args_json: *const c_char,
    out_json: *mut *mut c_char,
    err_json: *mut *mut c_char,
) -> i32 {
    guard(err_json, || {
        // SAFETY: the caller's contract above.
        unsafe { clear_out(out_json, "out_json") }?;
        let h = unsafe { handle(h) }?;
        let op = unsafe { required_str(op, "op") }?;
        let args = match unsafe { optional_str(args_json, "args_json") }? {
            None => Value::Null,
            Some(text) => memsilo_http::bindings::parse_args(text, "args_json")?,
        };
        let reply = h.backend.call(op, args)?;
        write_reply(reply, out_json);
        Ok(())
    })
}

/// `recall` by a caller-supplied vector passed as raw floats (no JSON encoding of the
/// vector): the `top_k` best memories of namespace `ns` (NULL: the key's only namespace)
/// for `vec[0..len]`. `top_k` 0 means the default. Output as in `memsilo_call`.
///
/// # Safety
/// `h` is a live handle; `ns` is NULL or a NUL-terminated string; `vec` points to `len`
/// floats; `out_json` is writable; `err_json` is writable or NULL.
#[no_mangle]
pub unsafe extern "C" fn memsilo_recall_vector(
    h: *const MemsiloHandle,
    ns: *const c_char,
    vec: *const f32,
    len: usize,
    top_k: u32,
    out_json: *mut *mut c_char,
    err_json: *mut *mut c_char,
) -> i32 {
    guard(err_json, || {
        // SAFETY: the caller's contract above.
        unsafe { clear_out(out_json, "out_json") }?;
        let h = unsafe { handle(h) }?;
        let ns = unsafe { optional_str(ns, "namespace") }?;
        if vec.is_null() {
            return Err(Error::invalid("vector", "must not be NULL"));
        }
        // SAFETY: `vec` points to `len` floats per the contract.
        let vector = unsafe { std::slice::from_raw_parts(vec, len) };
        let mut args = json!({});
        if let Some(ns) = ns {
            args["namespace"] = json!(ns);
        }
        if top_k > 0 {
            args["top_k"] = json!(top_k);
        }
        // The floats go to core as they are (a NaN is refused naming its index; as JSON it
        // became null); an empty vector goes as JSON, for core's refusal of an empty one.
        let reply = if vector.is_empty() {
            args["vector"] = json!([]);
            h.backend.call("recall", args)?
        } else {
            h.backend.call_with_vectors("recall", args, vector, vector.len())?
        };
        write_reply(reply, out_json);
        Ok(())
    })
}

/// An import under way (`memsilo_import_open`). Opaque to C; use from one thread at a time.
pub struct MemsiloImport {
    importer: Importer,
}

/// Starts an import into the existing namespace `ns` in batches of `batch_size` lines (0
/// means 1000): feed it the text of an export (JSON Lines, in chunks cut anywhere) with
/// `memsilo_import_feed`, end it with `memsilo_import_finish`, release it with
/// `memsilo_import_close`. In process the next batch is read while one is written; on a
/// remote handle the text goes to the server as one streamed request body. Each batch is all
/// or nothing; the first failure (a bad line is `MEMSILO_INVALID_ARGUMENT` naming it:
/// `line 3500: ...`) ends the import, with the batches before it written: its error body
/// says so, with `imported` (the counts `memsilo_import_finish` gives, of those batches)
/// and `line` (the line it names, if any).
///
/// On success `*out` receives the import.
///
/// # Safety
/// `h` is a live handle (it must outlive the import); `ns` is a NUL-terminated string; `out`
/// and `err_json` as in `memsilo_open`.
#[no_mangle]
pub unsafe extern "C" fn memsilo_import_open(
    h: *const MemsiloHandle,
    ns: *const c_char,
    batch_size: usize,
    out: *mut *mut MemsiloImport,
    err_json: *mut *mut c_char,
) -> i32 {
    guard(err_json, || {
        // SAFETY: the caller's contract above.
        unsafe { clear_out(out, "out") }?;
        let h = unsafe { handle(h) }?;
        let ns = unsafe { required_str(ns, "namespace") }?;
        let size = if batch_size == 0 { memsilo::transfer::DEFAULT_PAGE } else { batch_size };
        let importer = h.backend.importer(ns, size)?;
        // SAFETY: `out` was checked non-NULL by `clear_out`.
        unsafe { *out = Box::into_raw(Box::new(MemsiloImport { importer })) };
        Ok(())
    })
}

/// Feeds the next `len` bytes of the text to an import. A failure ends the import (it is the
/// import's error; later calls are `MEMSILO_INVALID_ARGUMENT`).
///
/// # Safety
/// `imp` is a live import; `data` points to `len` bytes (NULL only when `len` is 0);
/// `err_json` is writable or NULL.
#[no_mangle]
pub unsafe extern "C" fn memsilo_import_feed(
    imp: *mut MemsiloImport,
    data: *const u8,
    len: usize,
    err_json: *mut *mut c_char,
) -> i32 {
    guard(err_json, || {
        // SAFETY: the caller's contract above.
        let imp =
            unsafe { imp.as_mut() }.ok_or_else(|| Error::invalid("import", "must not be NULL"))?;
        if len == 0 {
            return Ok(());
        }
        if data.is_null() {
            return Err(Error::invalid("data", "must not be NULL"));
        }
        // SAFETY: `data` points to `len` bytes per the contract.
        imp.importer.feed(unsafe { std::slice::from_raw_parts(data, len) })
    })
}

/// Ends the text of an import and waits for its batches: `*out_json` receives, as in
/// `memsilo_call`, `{"value": {"lines", "memories", "entities", "relations", "expired"}, ...}`
/// (free it with `memsilo_string_free`). The import still needs `memsilo_import_close`.
///
/// # Safety
/// `imp` is a live import; `out_json` is writable; `err_json` is writable or NULL.
#[no_mangle]
pub unsafe extern "C" fn memsilo_import_finish(
    imp: *mut MemsiloImport,
    out_json: *mut *mut c_char,
    err_json: *mut *mut c_char,
) -> i32 {
    guard(err_json, || {
        // SAFETY: the caller's contract above.
        unsafe { clear_out(out_json, "out_json") }?;
        let imp =
            unsafe { imp.as_mut() }.ok_or_else(|| Error::invalid("import", "must not be NULL"))?;
        let summary = imp.importer.finish()?;
        write_reply(Reply::of_value(serde_json::to_value(summary)?), out_json);
        Ok(())
    })
}

/// Releases an import. NULL is ignored. An import released unfinished writes the batches
/// already handed on and not the rest of the text.
///
/// # Safety
/// `imp` is NULL or an import returned by `memsilo_import_open`, not yet closed, and not in
/// use by another thread.
#[no_mangle]
pub unsafe extern "C" fn memsilo_import_close(imp: *mut MemsiloImport) {
    if !imp.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: `imp` came from `Box::into_raw` in this library.
            drop(unsafe { Box::from_raw(imp) });
        }));
    }
}

/// Every operation name `memsilo_call` accepts, as a JSON array in `*out_json`
/// (free with `memsilo_string_free`).
///
/// # Safety
/// `out_json` is writable.
#[no_mangle]
pub unsafe extern "C" fn memsilo_operations(out_json: *mut *mut c_char) -> i32 {
    guard(std::ptr::null_mut(), || {
        // SAFETY: the caller's contract above.
        unsafe { clear_out(out_json, "out_json") }?;
        let text = json!(Request::OPERATIONS).to_string();
        // SAFETY: checked writable above.
        unsafe { *out_json = into_c_string(text) };
        Ok(())
    })
}

/// Runs the memsilo command line in this process, as the `memsilo` binary would:
/// `memsilo_serve(argc, argv)` from a C `main` (`argv[0]`, the program name, is skipped), e.g.
/// `memsilo serve --data ./data --listen 127.0.0.1:3300`. `serve` blocks until SIGINT or
/// SIGTERM. Returns the exit code (0 success, 1 failure, 2 usage error, 70 when memsilo
/// panicked; invalid arguments to this function are 2).
///
/// # Safety
/// `argv` points to `argc` NUL-terminated strings (NULL entries are refused).
#[no_mangle]
#[allow(clippy::similar_names)] // argc and argv are C's names for them.
pub unsafe extern "C" fn memsilo_serve(argc: c_int, argv: *const *const c_char) -> c_int {
    let run = || -> memsilo::Result<c_int> {
        let argc =
            usize::try_from(argc).map_err(|_| Error::invalid("argc", "must not be negative"))?;
        if argv.is_null() && argc > 0 {
            return Err(Error::invalid("argv", "must not be NULL"));
        }
        let mut cli_args = Vec::with_capacity(argc);
        for i in 1..argc {
            // SAFETY: `argv` holds `argc` entries per the contract.
            let arg = unsafe { *argv.add(i) };
            cli_args.push(unsafe { required_str(arg, "argv") }?.to_owned());
        }
        Ok(memsilo_http::run_cli(cli_args))
    };
    memsilo::error::catch_panic(run).unwrap_or_else(|e| {
        eprintln!("memsilo: {e}");
        if e.code() == memsilo::ErrorCode::InvalidArgument {
            2
        } else {
            memsilo_http::EXIT_PANIC
        }
    })
}

/// Releases a string returned by any memsilo function. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a string returned by memsilo and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn memsilo_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: `s` came from `CString::into_raw` in this library.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Releases a handle. NULL is ignored. The engine behind in-process handles closes when
/// its last handle is released.
///
/// # Safety
/// `h` is NULL or a handle returned by memsilo, not yet closed, and not in use by
/// another thread.
#[no_mangle]
pub unsafe extern "C" fn memsilo_close(h: *mut MemsiloHandle) {
    if !h.is_null() {
        // A panic in a destructor must not cross the boundary either.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: `h` came from `Box::into_raw` in this library.
            drop(unsafe { Box::from_raw(h) });
        }));
    }
}

/// Borrows a handle argument.
///
/// # Safety
/// `h` is NULL or a live handle.
unsafe fn handle<'a>(h: *const MemsiloHandle) -> memsilo::Result<&'a MemsiloHandle> {
    // SAFETY: per the contract.
    unsafe { h.as_ref() }.ok_or_else(|| Error::invalid("handle", "must not be NULL"))
}

fn write_reply(reply: Reply, out_json: *mut *mut c_char) {
    let text = memsilo_http::bindings::listed(reply).to_string();
    // SAFETY: `out_json` was checked writable by `clear_out`.
    unsafe { *out_json = into_c_string(text) };
}

#[cfg(test)]
mod tests;
