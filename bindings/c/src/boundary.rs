//! What every entry point does at the boundary: read C arguments, write out parameters, and
//! turn errors and panics into a return code plus an error body. No memsilo logic lives here.

use std::ffi::{c_char, CStr, CString};

use memsilo::api::error_body;
use memsilo::{Error, Result};

/// Runs `body`, catching panics; returns 0 or the error's C code and fills `err_json`.
pub(crate) fn guard(err_json: *mut *mut c_char, body: impl FnOnce() -> Result<()>) -> i32 {
    if !err_json.is_null() {
        // SAFETY: the caller passes NULL or a writable `char **`.
        unsafe { *err_json = std::ptr::null_mut() };
    }
    let Err(err) = memsilo::error::catch_panic(body) else { return 0 };
    if !err_json.is_null() {
        // SAFETY: as above.
        unsafe { *err_json = into_c_string(error_body(&err).to_string()) };
    }
    err.code().as_i32()
}

/// A required NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn required_str<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    // SAFETY: forwarded from the caller.
    unsafe { optional_str(p, name) }?.ok_or_else(|| Error::invalid(name, "must not be NULL"))
}

/// An optional NUL-terminated UTF-8 argument (NULL is `None`).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn optional_str<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map(Some).map_err(|_| Error::invalid(name, "is not valid UTF-8"))
}

/// Checks that an out parameter can be written, and clears it.
///
/// # Safety
/// `out` is NULL or a writable pointer.
pub(crate) unsafe fn clear_out<T>(out: *mut *mut T, name: &str) -> Result<()> {
    if out.is_null() {
        return Err(Error::invalid(name, "must not be NULL"));
    }
    // SAFETY: non-NULL and writable per the contract.
    unsafe { *out = std::ptr::null_mut() };
    Ok(())
}

/// Hands a Rust string to C (freed by `memsilo_string_free`). JSON text never holds a NUL;
/// any other text has NULs replaced so the string cannot be cut short silently.
pub(crate) fn into_c_string(s: String) -> *mut c_char {
    let c = CString::new(s).unwrap_or_else(|e| {
        let cleaned = String::from_utf8_lossy(&e.into_vec()).replace('\0', "\u{fffd}");
        CString::new(cleaned).unwrap_or_default()
    });
    c.into_raw()
}
