//! The real `memsilo` binary as a child process: start, serve, SIGTERM, clean exit; the
//! port-taken and bad-data-dir messages; the generated admin key.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use memsilo_http::Client;
use serde_json::json;

const KEY: &str = "binary-test-admin-key-42";

pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) url: String,
    lines: mpsc::Receiver<String>,
}

fn command(data: &std::path::Path, listen: &str, admin_key: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memsilo"));
    cmd.args(["serve", "--data"])
        .arg(data)
        .args(["--listen", listen])
        .env_remove("MEMSILO_DATA")
        .env_remove("MEMSILO_LISTEN")
        .env_remove("MEMSILO_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match admin_key {
        Some(k) => cmd.env("MEMSILO_ADMIN_KEY", k),
        None => cmd.env_remove("MEMSILO_ADMIN_KEY"),
    };
    cmd
}

/// Starts the binary and waits for its listening line (collecting stderr before it).
#[allow(clippy::zombie_processes)] // every test waits for the child after SIGTERM
pub(crate) fn start(data: &std::path::Path, admin_key: Option<&str>) -> (Running, Vec<String>) {
    start_command(command(data, "127.0.0.1:0", admin_key))
}

/// Starts `cmd` (a `serve` command) at log level debug and waits for its listening line.
#[allow(clippy::zombie_processes)] // the child is handed back in `Running`; callers wait on it
fn start_command(mut cmd: Command) -> (Running, Vec<String>) {
    let mut child = cmd.args(["--log-level", "debug"]).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut before = Vec::new();
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("no listening line within 60s");
        if let Some(addr) = line.strip_prefix("memsilo listening on ") {
            let url = addr.trim().to_owned();
            return (Running { child, url, lines: rx }, before);
        }
        before.push(line);
    }
}

pub(crate) fn sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

pub(crate) fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the server did not stop within 30s of SIGTERM");
}

#[test]
fn the_binary_serves_and_stops_cleanly_on_sigterm_keeping_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut run, _) = start(dir.path(), Some(KEY));
    let agent = crate::support::agent();
    let health = agent.get(format!("{}/healthz", run.url)).call().unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // The next line says where the console is, or that this binary has none.
    let console = run.lines.recv_timeout(Duration::from_secs(10)).unwrap();
    let page = agent.get(format!("{}/console", run.url)).call();
    if page.as_ref().is_ok_and(|r| r.status().as_u16() == 200) {
        assert_eq!(console, format!("memsilo console at {}/console", run.url));
    } else {
        assert_eq!(
            console,
            "memsilo console not built into this binary (make console, then rebuild)"
        );
    }

    let admin = Client::connect(&run.url, KEY).unwrap();
    admin.call("create_namespace", json!({"name": "durable"})).unwrap();
    let stored =
        admin.call("store_memory", json!({"namespace": "durable", "content": "kept"})).unwrap();
    let first_id = stored.value["id"].as_str().unwrap().to_owned();
    let key = admin
        .call(
            "create_key",
            json!({"name": "k", "namespaces": [{"namespace": "durable", "access": "read"}]}),
        )
        .unwrap()
        .value["key"]
        .as_str()
        .unwrap()
        .to_owned();
    Client::connect(&run.url, &key).unwrap().call("get_memory", json!({"id": first_id})).unwrap();

    // A write racing the shutdown: if it was acknowledged, it must survive.
    let racing = {
        let admin = admin.clone();
        std::thread::spawn(move || {
            let memories: Vec<_> =
                (0..200).map(|i| json!({"content": format!("batch memory {i}")})).collect();
            admin.call("store_memories", json!({"namespace": "durable", "memories": memories}))
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    sigterm(&run.child);
    let status = wait_exit(&mut run.child);
    assert!(status.success(), "exit status {status:?}");
    let acknowledged = racing.join().unwrap().ok();
    // The debug log has a line per request and never a key.
    let log: Vec<String> = run.lines.iter().collect(); // ends at the child's EOF
    assert!(log.iter().any(|l| l.contains("POST /v1/memory/store 201")), "{log:?}");
    assert!(log.iter().all(|l| !l.contains(KEY) && !l.contains("msk_")), "{log:?}");

    let (mut again, before) = start(dir.path(), Some(KEY));
    assert!(before.iter().all(|l| !l.contains("admin key")), "{before:?}");
    let admin = Client::connect(&again.url, KEY).unwrap();
    admin.call("get_memory", json!({"namespace": "durable", "id": first_id})).unwrap();
    if let Some(reply) = acknowledged {
        let ids = reply.value["ids"].as_array().unwrap();
        assert_eq!(ids.len(), 200);
        for id in ids {
            admin.call("get_memory", json!({"namespace": "durable", "id": id})).unwrap();
        }
    }
    sigterm(&again.child);
    assert!(wait_exit(&mut again.child).success());
}

#[test]
fn a_taken_port_and_an_unusable_data_dir_are_one_clear_line_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = command(dir.path(), &addr, Some(KEY)).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}: address already in use")), "{err}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let out = command(&file, "127.0.0.1:0", Some(KEY)).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open data directory"), "{err}");

    let out = command(dir.path(), "127.0.0.1:0", Some(KEY))
        .arg("--log-level")
        .arg("loud")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn without_an_admin_key_one_is_generated_printed_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut run, before) = start(dir.path(), None);
    let key = before
        .iter()
        .find_map(|l| l.strip_prefix("memsilo: admin key: "))
        .unwrap_or_else(|| panic!("no generated key in {before:?}"))
        .trim()
        .to_owned();
    Client::connect(&run.url, &key).unwrap().call("list_tenants", json!({})).unwrap();
    sigterm(&run.child);
    assert!(wait_exit(&mut run.child).success());

    let (mut again, before) = start(dir.path(), None);
    assert!(before.iter().all(|l| !l.contains("admin key")), "printed twice: {before:?}");
    Client::connect(&again.url, &key).unwrap();
    sigterm(&again.child);
    assert!(wait_exit(&mut again.child).success());
}

/// The engine reports through `tracing` and never prints; the server shows what it reports
/// as lines of its log (here: the embedding model that is not available, said once).
#[test]
fn the_engines_warnings_are_lines_of_the_server_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(&dir.path().join("data"), "127.0.0.1:0", Some(KEY));
    cmd.env("MEMSILO_CACHE_DIR", dir.path().join("empty-cache"))
        .env("MEMSILO_OFFLINE", "1")
        .env_remove("MEMSILO_MODEL_DIR")
        .env_remove("MEMSILO_EMBEDDER");
    let (mut run, _) = start_command(cmd);
    let admin = Client::connect(&run.url, KEY).unwrap();
    admin.call("create_namespace", json!({"name": "words"})).unwrap();
    admin.call("store_memory", json!({"namespace": "words", "content": "hello there"})).unwrap();
    let want = "memsilo: warning: embedding model potion-base-8M is not available";
    let mut seen = Vec::new();
    let hint = "memsilo: install the model with";
    while !seen.iter().any(|l: &String| l.starts_with(hint)) {
        let line = run.lines.recv_timeout(Duration::from_secs(30));
        let line = line.unwrap_or_else(|e| panic!("{e}: no {hint:?} in:\n{}", seen.join("\n")));
        seen.push(line);
    }
    assert_eq!(seen.iter().filter(|l| l.starts_with(want)).count(), 1, "{seen:?}");
    sigterm(&run.child);
    assert!(wait_exit(&mut run.child).success());
}

/// A model found by name (`MEMSILO_MODEL_DIR/potion-base-8M`, the default) that does not load
/// stops the server at start with the error naming the file, as a broken `--embedder DIR`
/// does: it is not the "no model can be had" fallback to hashing.
#[test]
fn a_broken_model_found_by_name_stops_the_server_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("models/potion-base-8M");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), "{}").unwrap();
    std::fs::write(model.join("tokenizer.json"), "not a tokenizer").unwrap();
    std::fs::write(model.join("model.safetensors"), b"").unwrap();
    let mut cmd = command(&dir.path().join("data"), "127.0.0.1:0", Some(KEY));
    cmd.env("MEMSILO_MODEL_DIR", dir.path().join("models"))
        .env("MEMSILO_CACHE_DIR", dir.path().join("empty-cache"))
        .env("MEMSILO_OFFLINE", "1")
        .env_remove("MEMSILO_EMBEDDER");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let file = model.join("tokenizer.json");
    let want = format!("memsilo: model potion-base-8M: embedder: {}: ", file.display());
    assert!(stderr.contains(&want), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[test]
fn help_into_a_pipe_closed_early_ends_quietly() {
    // `memsilo --help | head -0`: the reader is gone before the help is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    for arg in ["--help", "--version"] {
        let out = Command::new(env!("CARGO_BIN_EXE_memsilo"))
            .arg(arg)
            .stdout(Stdio::from(writer.try_clone().unwrap()))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{arg}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{arg}: {stderr}");
    }
}
