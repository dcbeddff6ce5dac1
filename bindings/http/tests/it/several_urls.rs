//! A remote client given several server URLs: the real `memsilo` binary behind one, a closed
//! port or a misbehaving node (a raw socket) behind the others. Which calls move to the next
//! server and which are returned as they are.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use memsilo::ErrorCode;
use memsilo_http::Client;
use serde_json::{json, Value};

use crate::binary::{sigterm, start, wait_exit};

const KEY: &str = "several-urls-test-admin-key-7";

fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A node that takes every request and then: answers `whoami` (so a client can connect
/// through it), drops the connection without answering `POST /v1/memory/store` (a node dying
/// with the request in hand), answers `get_batch` 403, and anything else 503 (a cluster node
/// that cannot reach the namespace's owner).
fn misbehaving_node() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || answer(stream));
        }
    });
    url
}

fn answer(stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        if line == "\r\n" {
            break;
        }
        if head.is_empty() {
            head = line;
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let path = head.split(' ').nth(1).unwrap_or("").split('?').next().unwrap_or("");
    let (status, body) = match path {
        "/v1/whoami" => ("200 OK", json!({ "principal": "root" })),
        "/v1/memory/store" => return, // dropped, the request read
        "/v1/memory/get_batch" => {
            ("403 Forbidden", json!({ "error": "forbidden", "message": "not yours" }))
        }
        _ => (
            "503 Service Unavailable",
            json!({ "error": "internal", "message": "the namespace's owner did not answer; retry" }),
        ),
    };
    let body = body.to_string();
    let _ = write!(
        reader.get_mut(),
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn count(client: &Client) -> u64 {
    let reply = client.call("count_memories", json!({ "namespace": "n" })).unwrap();
    reply.value["count"].as_u64().unwrap()
}

#[test]
fn a_dead_first_url_is_skipped_and_bad_urls_name_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let (mut run, _) = start(dir.path(), Some(KEY));
    let dead = closed_port();
    let client = Client::connect_urls(&[dead.as_str(), run.url.as_str()], KEY).unwrap();
    assert_eq!(client.url(), run.url);
    client.call("create_namespace", json!({ "name": "n" })).unwrap();
    let id = client.call("store_memory", json!({ "namespace": "n", "content": "kept" })).unwrap();
    let id = id.value["id"].as_str().unwrap().to_owned();
    let got = client.call("get_memory", json!({ "namespace": "n", "id": id })).unwrap();
    assert_eq!(got.value["content"], "kept");
    // The comma-separated form of one string is the same client.
    let again = Client::connect(&format!("{dead},{}", run.url), KEY).unwrap();
    assert_eq!(count(&again), 1);

    let err = Client::connect_urls(&[run.url.as_str(), "localhost:3300"], KEY).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.to_string().contains("urls[1]"), "{err}");
    let err = Client::connect_urls::<&str>(&[], KEY).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.to_string().contains("urls"), "{err}");
    // Every server down: the last failure, saying which server.
    let err = Client::connect_urls(&[dead.as_str(), &closed_port()], KEY).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Internal);
    assert!(err.to_string().contains("cannot reach the memsilo server"), "{err}");

    sigterm(&run.child);
    assert!(wait_exit(&mut run.child).success());
}

#[test]
fn only_calls_that_cannot_apply_twice_move_to_the_next_server() {
    let dir = tempfile::tempdir().unwrap();
    let (mut run, _) = start(dir.path(), Some(KEY));
    let live = Client::connect(&run.url, KEY).unwrap();
    live.call("create_namespace", json!({ "name": "n" })).unwrap();
    let bad = misbehaving_node();
    let urls = [bad.as_str(), run.url.as_str()];

    // A write without an id whose connection dropped after sending: the first node may have
    // stored it, so it is not sent again; the caller sees the failure.
    let client = Client::connect_urls(&urls, KEY).unwrap();
    assert_eq!(client.url(), bad);
    let err = client
        .call("store_memory", json!({ "namespace": "n", "content": "maybe stored" }))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Internal);
    assert!(err.to_string().contains(&bad), "{err}");
    // A 503 to a write without ids: returned as it is, not sent on.
    let memories = [json!({ "content": "a" }), json!({ "content": "b" })];
    let err = client
        .call("store_memories", json!({ "namespace": "n", "memories": memories }))
        .unwrap_err();
    assert!(err.to_string().contains("owner did not answer"), "{err}");
    // A 4xx is the answer, whichever node gave it.
    let err = client.call("get_memories", json!({ "namespace": "n", "ids": ["x"] })).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    assert_eq!(client.url(), bad);
    assert_eq!(count(&live), 0, "a write was sent twice or through the wrong node");

    // A read answered 503 moves on, and later calls start at the server that answered.
    assert_eq!(count(&client), 0);
    assert_eq!(client.url(), run.url);

    // Stores naming their ids are sent again after a dropped connection or a 503.
    let client = Client::connect_urls(&urls, KEY).unwrap();
    let stored = client
        .call("store_memory", json!({ "namespace": "n", "id": "m1", "content": "one" }))
        .unwrap();
    assert_eq!(stored.value["id"], "m1");
    let client = Client::connect_urls(&urls, KEY).unwrap();
    let memories = [json!({ "id": "m2", "content": "two" }), json!({ "id": "m3", "content": "3" })];
    client.call("store_memories", json!({ "namespace": "n", "memories": memories })).unwrap();
    let ids: Vec<Value> = ["m1", "m2", "m3"].iter().map(|i| json!(i)).collect();
    let got = live.call("get_memories", json!({ "namespace": "n", "ids": ids })).unwrap();
    assert_eq!(got.value["memories"].as_array().map(Vec::len), Some(3), "{}", got.value);
    assert_eq!(count(&live), 3);

    sigterm(&run.child);
    assert!(wait_exit(&mut run.child).success());
}
