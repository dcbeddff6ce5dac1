//! The Python exception tree: `MemsiloError` and one subclass per [`ErrorCode`], and the one
//! function mapping a [`memsilo::Error`] to it. Each class carries `code` and `status` as
//! class attributes; each raised instance also has `message`, `retry_after` and `details`
//! (the API.md error body as a dict).

use std::panic::{catch_unwind, AssertUnwindSafe};

use memsilo::{Error, ErrorCode};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyType;

create_exception!(memsilo, MemsiloError, PyException, "Base class of every memsilo error.");
create_exception!(
    memsilo,
    InvalidArgumentError,
    MemsiloError,
    "A request field failed validation."
);
create_exception!(
    memsilo,
    UnauthorizedError,
    MemsiloError,
    "Missing, malformed, unknown, expired or revoked key."
);
create_exception!(memsilo, ForbiddenError, MemsiloError, "The key is valid but not allowed here.");
create_exception!(
    memsilo,
    NotFoundError,
    MemsiloError,
    "The tenant, member, key, memory or entity does not exist."
);
create_exception!(
    memsilo,
    ConflictError,
    MemsiloError,
    "Duplicate name, tenant with children, or member already exists."
);
create_exception!(
    memsilo,
    QuotaExceededError,
    MemsiloError,
    "A storage, member or namespace limit would be exceeded."
);
create_exception!(
    memsilo,
    RateLimitedError,
    MemsiloError,
    "Over the tenant's qps limit; see `retry_after`."
);
create_exception!(
    memsilo,
    PayloadTooLargeError,
    MemsiloError,
    "A body or field beyond the documented limits."
);
create_exception!(memsilo, InternalError, MemsiloError, "A bug or an environment failure.");

/// The class raised for a wire code; unknown codes fall back to the base class.
fn exception_type<'py>(py: Python<'py>, code: &str) -> Bound<'py, PyType> {
    match code {
        "invalid_argument" => py.get_type::<InvalidArgumentError>(),
        "unauthorized" => py.get_type::<UnauthorizedError>(),
        "forbidden" => py.get_type::<ForbiddenError>(),
        "not_found" => py.get_type::<NotFoundError>(),
        "conflict" => py.get_type::<ConflictError>(),
        "quota_exceeded" => py.get_type::<QuotaExceededError>(),
        "rate_limited" => py.get_type::<RateLimitedError>(),
        "payload_too_large" => py.get_type::<PayloadTooLargeError>(),
        "internal" => py.get_type::<InternalError>(),
        _ => py.get_type::<MemsiloError>(),
    }
}

/// Adds the classes to the module, with `code` and `status` set on each.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let base = py.get_type::<MemsiloError>();
    base.setattr("code", ErrorCode::Internal.as_str())?;
    base.setattr("status", ErrorCode::Internal.http_status())?;
    for attr in ["message", "retry_after", "details"] {
        base.setattr(attr, py.None())?;
    }
    m.add("MemsiloError", &base)?;
    for code in ErrorCode::ALL {
        let ty = exception_type(py, code.as_str());
        ty.setattr("code", code.as_str())?;
        ty.setattr("status", code.http_status())?;
        m.add(ty.name()?, &ty)?;
    }
    m.add("ERROR_CODES", ErrorCode::ALL.map(ErrorCode::as_str).to_vec())?;
    Ok(())
}

/// Maps an engine error to its Python exception, keeping the code, status, message,
/// retry-after and the error body.
pub(crate) fn to_py_err(py: Python<'_>, e: &Error) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let message = e.to_string();
        let exc = exception_type(py, e.code().as_str()).call1((message.as_str(),))?;
        exc.setattr("message", message)?;
        exc.setattr("retry_after", e.retry_after())?;
        let body = serde_json::to_string(&memsilo::api::error_body(e)).unwrap_or_default();
        exc.setattr("details", py.import("json")?.call_method1("loads", (body,))?)?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|err| err)
}

/// Runs `f`, turning a panic into an `internal` error so that none crosses into Python.
pub(crate) fn guard<T>(f: impl FnOnce() -> memsilo::Result<T>) -> memsilo::Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(Error::Internal(format!("panic in memsilo: {what}")))
    })
}
