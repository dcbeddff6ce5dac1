//! The Python exception tree: `MemsiloError` and one subclass per [`ErrorCode`], and the one
//! function mapping a [`memsilo::Error`] to it. Each class carries `code` and `status` as
//! class attributes; each raised instance also has `message`, `retry_after`, `field`,
//! `namespace`, `tenant_id`, `line` and `imported` (`None` where they do not apply), and
//! `details` (the API.md error body as a dict).

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
create_exception!(
    memsilo,
    MethodNotAllowedError,
    MemsiloError,
    "An HTTP method the server's route does not take."
);

/// The class raised for a code (one per row of core's table: the match is exhaustive).
fn exception_type(py: Python<'_>, code: ErrorCode) -> Bound<'_, PyType> {
    match code {
        ErrorCode::InvalidArgument => py.get_type::<InvalidArgumentError>(),
        ErrorCode::Unauthorized => py.get_type::<UnauthorizedError>(),
        ErrorCode::Forbidden => py.get_type::<ForbiddenError>(),
        ErrorCode::NotFound => py.get_type::<NotFoundError>(),
        ErrorCode::Conflict => py.get_type::<ConflictError>(),
        ErrorCode::QuotaExceeded => py.get_type::<QuotaExceededError>(),
        ErrorCode::RateLimited => py.get_type::<RateLimitedError>(),
        ErrorCode::PayloadTooLarge => py.get_type::<PayloadTooLargeError>(),
        ErrorCode::Internal => py.get_type::<InternalError>(),
        ErrorCode::MethodNotAllowed => py.get_type::<MethodNotAllowedError>(),
    }
}

/// Adds the classes to the module, with `code` and `status` set on each.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let base = py.get_type::<MemsiloError>();
    base.setattr("code", ErrorCode::Internal.as_str())?;
    base.setattr("status", ErrorCode::Internal.http_status())?;
    let attrs = ["message", "retry_after", "field", "namespace", "tenant_id", "line", "imported"];
    for attr in attrs.into_iter().chain(["details"]) {
        base.setattr(attr, py.None())?;
    }
    m.add("MemsiloError", &base)?;
    for code in ErrorCode::ALL {
        let ty = exception_type(py, code);
        ty.setattr("code", code.as_str())?;
        ty.setattr("status", code.http_status())?;
        m.add(ty.name()?, &ty)?;
    }
    m.add("ERROR_CODES", ErrorCode::ALL.map(ErrorCode::as_str).to_vec())?;
    Ok(())
}

/// Maps an engine error to its Python exception, keeping the code, status, message,
/// retry-after and the error body. The failures underneath (an I/O or storage error) become
/// its `__cause__` chain: plain `Exception`s carrying their messages, nearest first.
pub(crate) fn to_py_err(py: Python<'_>, e: &Error) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let message = e.to_string();
        let exc = exception_type(py, e.code()).call1((message.as_str(),))?;
        exc.setattr("message", message)?;
        exc.setattr("retry_after", e.retry_after())?;
        let body = memsilo::api::error_body(e);
        for attr in ["field", "namespace", "tenant_id"] {
            exc.setattr(attr, body[attr].as_str())?;
        }
        exc.setattr("line", body["line"].as_u64())?;
        let body = serde_json::to_string(&body).unwrap_or_default();
        let details = py.import("json")?.call_method1("loads", (body,))?;
        // What an import wrote before it stopped: the body's `imported`, as a dict.
        exc.setattr("imported", details.get_item("imported").ok())?;
        exc.setattr("details", details)?;
        let mut innermost: Option<Bound<'_, PyAny>> = None;
        for cause in e.causes().iter().rev() {
            let link = py.get_type::<PyException>().call1((cause.as_str(),))?;
            if let Some(next) = innermost.take() {
                link.setattr("__cause__", next)?;
            }
            innermost = Some(link);
        }
        if let Some(cause) = innermost {
            exc.setattr("__cause__", cause)?;
        }
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|err| err)
}

/// Runs `f`, turning a panic into an `internal` error so that none crosses into Python.
pub(crate) fn guard<T>(f: impl FnOnce() -> memsilo::Result<T>) -> memsilo::Result<T> {
    memsilo::error::catch_panic(f)
}
