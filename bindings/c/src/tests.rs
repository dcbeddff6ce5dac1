//! The entry points called the way C calls them: raw pointers, out parameters, freed strings.

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use memsilo::ErrorCode;
use serde_json::{json, Value};

use super::*;

/// Takes ownership of a returned string, frees it through the C entry, and parses it.
fn take_json(p: *mut c_char) -> Value {
    assert!(!p.is_null(), "expected a string");
    let text = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
    unsafe { memsilo_string_free(p) };
    serde_json::from_str(&text).unwrap()
}

fn open(dir: &std::path::Path) -> *mut MemsiloHandle {
    let path = CString::new(dir.to_str().unwrap()).unwrap();
    let mut h = null_mut();
    let mut err = null_mut();
    assert_eq!(unsafe { memsilo_open(path.as_ptr(), &raw mut h, &raw mut err) }, MEMSILO_OK);
    assert!(err.is_null());
    h
}

/// `memsilo_call` as C would make it: `Ok(reply)` or `Err((code, error body))`.
fn call(h: *const MemsiloHandle, op: &str, args: &Value) -> Result<Value, (i32, Value)> {
    let op = CString::new(op).unwrap();
    let args = CString::new(args.to_string()).unwrap();
    let (mut out, mut err) = (null_mut(), null_mut());
    let rc = unsafe { memsilo_call(h, op.as_ptr(), args.as_ptr(), &raw mut out, &raw mut err) };
    if rc == MEMSILO_OK {
        assert!(err.is_null());
        Ok(take_json(out))
    } else {
        assert!(out.is_null(), "no result on failure");
        Err((rc, take_json(err)))
    }
}

fn scoped(h: *const MemsiloHandle, key: &str) -> Result<*mut MemsiloHandle, (i32, Value)> {
    let key = CString::new(key).unwrap();
    let (mut out, mut err) = (null_mut(), null_mut());
    match unsafe { memsilo_scoped(h, key.as_ptr(), &raw mut out, &raw mut err) } {
        MEMSILO_OK => Ok(out),
        rc => Err((rc, take_json(err))),
    }
}

#[test]
fn header_constants_are_the_core_error_table() {
    let consts = [
        MEMSILO_INVALID_ARGUMENT,
        MEMSILO_UNAUTHORIZED,
        MEMSILO_FORBIDDEN,
        MEMSILO_NOT_FOUND,
        MEMSILO_CONFLICT,
        MEMSILO_QUOTA_EXCEEDED,
        MEMSILO_RATE_LIMITED,
        MEMSILO_PAYLOAD_TOO_LARGE,
        MEMSILO_INTERNAL,
        MEMSILO_METHOD_NOT_ALLOWED,
    ];
    assert_eq!(consts.len(), ErrorCode::ALL.len());
    for (c, code) in consts.into_iter().zip(ErrorCode::ALL) {
        assert_eq!(c, code.as_i32(), "{code}");
    }
}

#[test]
fn scoped_key_stays_in_its_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let root = open(dir.path());
    for ns in ["tenant-acme", "tenant-globex"] {
        call(root, "create_namespace", &json!({ "name": ns })).unwrap();
    }
    let key = call(
        root,
        "create_key",
        &json!({ "name": "acme", "namespaces": [{ "namespace": "tenant-acme", "access": "write" }] }),
    )
    .unwrap();
    let acme = scoped(root, key["value"]["key"].as_str().unwrap()).unwrap();

    let stored = call(
        acme,
        "store_memory",
        &json!({ "namespace": "tenant-acme", "content": "Q3 roadmap: Omega" }),
    )
    .unwrap();
    assert!(stored["value"]["id"].is_string());
    let hits =
        call(acme, "recall", &json!({ "namespace": "tenant-acme", "query": "roadmap" })).unwrap();
    assert_eq!(hits["value"][0]["content"], "Q3 roadmap: Omega");

    let (rc, body) =
        call(acme, "recall", &json!({ "namespace": "tenant-globex", "query": "x" })).unwrap_err();
    assert_eq!(rc, MEMSILO_FORBIDDEN);
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["code"], 403);
    assert_eq!(body["message"], "Key not authorized for namespace tenant-globex");

    let list = call(root, "list_namespaces", &json!({})).unwrap();
    assert_eq!(list["total_count"], 2);
    assert_eq!(list["value"].as_array().unwrap().len(), 2);

    let (rc, _) = scoped(root, "msk_not_a_real_key").unwrap_err();
    assert_eq!(rc, MEMSILO_UNAUTHORIZED);
    unsafe {
        memsilo_close(acme);
        memsilo_close(root);
    }
}

#[test]
fn recall_vector_takes_raw_floats() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path());
    call(h, "create_namespace", &json!({ "name": "vecs", "dimensions": 3 })).unwrap();
    for (content, v) in
        [("x axis", [1.0, 0.0, 0.0]), ("y axis", [0.0, 1.0, 0.0]), ("z axis", [0.0, 0.0, 1.0])]
    {
        call(
            h,
            "store_memory",
            &json!({ "namespace": "vecs", "content": content, "embedding": v }),
        )
        .unwrap();
    }
    let ns = CString::new("vecs").unwrap();
    let query = [0.1_f32, 0.9, 0.0];
    let (mut out, mut err) = (null_mut(), null_mut());
    let rc = unsafe {
        memsilo_recall_vector(
            h,
            ns.as_ptr(),
            query.as_ptr(),
            query.len(),
            2,
            &raw mut out,
            &raw mut err,
        )
    };
    assert_eq!(rc, MEMSILO_OK);
    let hits = take_json(out);
    let hits = hits["value"].as_array().unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["content"], "y axis");

    let rc =
        unsafe { memsilo_recall_vector(h, ns.as_ptr(), null(), 0, 2, &raw mut out, &raw mut err) };
    assert_eq!(rc, MEMSILO_INVALID_ARGUMENT);
    assert_eq!(take_json(err)["field"], "vector");
    // A NaN is refused by core's check, naming the element (as JSON it was null: "invalid
    // type: null, expected f32").
    let bad = [0.1_f32, f32::NAN, 0.0];
    let rc = unsafe {
        memsilo_recall_vector(h, ns.as_ptr(), bad.as_ptr(), 3, 2, &raw mut out, &raw mut err)
    };
    assert_eq!(rc, MEMSILO_INVALID_ARGUMENT);
    let refused = take_json(err);
    assert_eq!(refused["field"], "vector", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("element 1 is not a finite"),
        "{refused}"
    );
    // An empty (non-NULL) vector is refused as core refuses an empty one.
    let rc = unsafe {
        memsilo_recall_vector(h, ns.as_ptr(), query.as_ptr(), 0, 2, &raw mut out, &raw mut err)
    };
    assert_eq!(rc, MEMSILO_INVALID_ARGUMENT);
    assert_eq!(take_json(err)["field"], "vector");
    unsafe { memsilo_close(h) };
}

#[test]
fn bad_pointers_and_text_are_invalid_argument_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path());
    let op = CString::new("list_namespaces").unwrap();
    let (mut out, mut err) = (null_mut(), null_mut());

    let rc = unsafe { memsilo_call(null(), op.as_ptr(), null(), &raw mut out, &raw mut err) };
    assert_eq!((rc, take_json(err)["field"].clone()), (MEMSILO_INVALID_ARGUMENT, json!("handle")));
    let rc = unsafe { memsilo_call(h, null(), null(), &raw mut out, &raw mut err) };
    assert_eq!((rc, take_json(err)["field"].clone()), (MEMSILO_INVALID_ARGUMENT, json!("op")));
    let rc = unsafe { memsilo_call(h, op.as_ptr(), null(), null_mut(), &raw mut err) };
    assert_eq!(
        (rc, take_json(err)["field"].clone()),
        (MEMSILO_INVALID_ARGUMENT, json!("out_json"))
    );

    let bad_utf8 = [b'n', 0xff, b'x', 0];
    let rc =
        unsafe { memsilo_call(h, bad_utf8.as_ptr().cast(), null(), &raw mut out, &raw mut err) };
    let body = take_json(err);
    assert_eq!(rc, MEMSILO_INVALID_ARGUMENT);
    assert_eq!(body["message"], "op: is not valid UTF-8");

    let not_json = CString::new("{name: 1").unwrap();
    let rc = unsafe { memsilo_call(h, op.as_ptr(), not_json.as_ptr(), &raw mut out, &raw mut err) };
    assert_eq!(
        (rc, take_json(err)["field"].clone()),
        (MEMSILO_INVALID_ARGUMENT, json!("args_json"))
    );

    // NULL args mean "{}"; a NULL err_json just drops the error body.
    let rc = unsafe { memsilo_call(h, op.as_ptr(), null(), &raw mut out, null_mut()) };
    assert_eq!(rc, MEMSILO_OK);
    assert_eq!(take_json(out)["total_count"], 0);
    let unknown = CString::new("drop_everything").unwrap();
    assert_eq!(
        unsafe { memsilo_call(h, unknown.as_ptr(), null(), &raw mut out, null_mut()) },
        MEMSILO_INVALID_ARGUMENT
    );
    assert!(out.is_null());

    unsafe {
        memsilo_string_free(null_mut());
        memsilo_close(null_mut());
        memsilo_close(h);
    }
}

#[test]
fn a_panic_becomes_internal_with_a_body() {
    let mut err = null_mut();
    let rc = boundary::guard(&raw mut err, || panic!("boom"));
    assert_eq!(rc, MEMSILO_INTERNAL);
    let body = take_json(err);
    assert_eq!(body["error"], "internal");
    assert_eq!(body["message"], "internal error: panic in memsilo: boom");
}

#[test]
fn an_io_failure_reaches_c_as_the_causes_of_the_error_body() {
    let dir = tempfile::tempdir().unwrap();
    // The lock file's place is taken by a directory: the open fails with EISDIR.
    std::fs::create_dir(dir.path().join("LOCK")).unwrap();
    let path = CString::new(dir.path().to_str().unwrap()).unwrap();
    let (mut h, mut err) = (null_mut(), null_mut());
    assert_eq!(unsafe { memsilo_open(path.as_ptr(), &raw mut h, &raw mut err) }, MEMSILO_INTERNAL);
    assert!(h.is_null());
    let body = take_json(err);
    let lock = std::fs::OpenOptions::new().read(true).write(true).open(dir.path().join("LOCK"));
    let cause = lock.unwrap_err().to_string(); // Is a directory (os error 21)
    assert_eq!(body["causes"], json!([cause]), "{body}");
    assert_eq!(body["message"], format!("internal error: io: {cause}"));
}

/// The code lists spelled out for C (memsilo.h) and Go (go-ffi/errors.go) are core's table:
/// the same names, in the same order, with the same integers.
#[test]
fn the_c_header_and_the_go_constants_spell_the_core_error_table() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let header = std::fs::read_to_string(root.join("bindings/c/include/memsilo.h")).unwrap();
    let go = std::fs::read_to_string(root.join("go-ffi/errors.go")).unwrap();
    let mut go_consts = Vec::new();
    for code in ErrorCode::ALL {
        let name = code.as_str();
        let define = format!("#define MEMSILO_{} {}\n", name.to_uppercase(), code.as_i32());
        assert!(header.contains(&define), "memsilo.h lacks {define:?}");
        let camel: String = name.split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
        let go_const = format!("Code{camel} Code = \"{name}\"");
        let squeezed = go.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(squeezed.contains(&go_const), "errors.go lacks {go_const:?}");
        go_consts.push(format!("Code{camel}"));
    }
    let integers = header
        .lines()
        .filter(|l| l.starts_with("#define MEMSILO_"))
        .filter(|l| l.rsplit(' ').next().is_some_and(|n| n.parse::<i32>().is_ok()))
        .count();
    assert_eq!(integers, ErrorCode::ALL.len() + 1, "MEMSILO_OK and one per code");
    assert_eq!(go.matches(" Code = \"").count(), ErrorCode::ALL.len(), "one Go constant per code");
    // cCodes maps the C integers to Go codes: index i is the code whose C integer is i.
    let c_codes = go.split("var cCodes = [...]Code{").nth(1).unwrap().split('}').next().unwrap();
    let listed: Vec<&str> = c_codes.split(',').map(str::trim).collect();
    assert_eq!(listed[0], "\"\"");
    assert_eq!(listed[1..], go_consts.iter().map(String::as_str).collect::<Vec<_>>()[..]);
}

#[test]
fn operations_lists_every_core_operation() {
    let mut out = null_mut();
    assert_eq!(unsafe { memsilo_operations(&raw mut out) }, MEMSILO_OK);
    let ops = take_json(out);
    assert_eq!(ops, json!(Request::OPERATIONS));
    assert!(ops.as_array().unwrap().contains(&json!("recall")));
}

#[test]
fn connect_and_serve_refuse_bad_arguments() {
    let (mut h, mut err) = (null_mut(), null_mut());
    let url = CString::new("localhost without scheme").unwrap();
    let key = CString::new("msk_x").unwrap();
    let rc = unsafe { memsilo_connect(url.as_ptr(), key.as_ptr(), &raw mut h, &raw mut err) };
    assert_eq!(rc, MEMSILO_INVALID_ARGUMENT);
    assert_eq!(take_json(err)["field"], "url");
    assert!(h.is_null());
    let rc = unsafe { memsilo_connect(url.as_ptr(), null(), &raw mut h, &raw mut err) };
    assert_eq!((rc, take_json(err)["field"].clone()), (MEMSILO_INVALID_ARGUMENT, json!("api_key")));

    let argv = [c"memsilo".as_ptr(), c"no-such-command".as_ptr()];
    assert_eq!(unsafe { memsilo_serve(2, argv.as_ptr()) }, 2, "usage error");
    let argv = [c"memsilo".as_ptr(), c"--version".as_ptr()];
    assert_eq!(unsafe { memsilo_serve(2, argv.as_ptr()) }, 0);
    assert_eq!(unsafe { memsilo_serve(-1, argv.as_ptr()) }, 2);
    assert_eq!(unsafe { memsilo_serve(2, null()) }, 2);
}
