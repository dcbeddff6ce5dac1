//! `memsilo serve --data DIR --listen ADDR [--log-level LEVEL] [--embedder NAME|DIR]
//! [--keyring DIR]`, with environment fallbacks (`MEMSILO_DATA`, `MEMSILO_LISTEN`,
//! `MEMSILO_LOG`, `MEMSILO_EMBEDDER`, `MEMSILO_ADMIN_KEY`, `MEMSILO_METRICS_TOKEN`,
//! `MEMSILO_AUDIT_RETENTION_DAYS`, `MEMSILO_KEYRING`), `memsilo models pull NAME [--from DIR]`
//! and `memsilo upgrade DIR`.

use std::path::Path;
use std::time::Duration;

use memsilo::{Engine, ModelPaths, Options};

use crate::log::{self, Level};
use crate::server::{self, ServeOptions};

const USAGE: &str = "\
usage: memsilo [serve] [--data DIR] [--listen ADDR] [--log-level LEVEL]
                       [--body-limit BYTES] [--request-timeout SECS] [--metrics-token TOKEN]
                       [--embedder NAME|DIR] [--audit-retention-days DAYS] [--keyring DIR]
                       [--cluster --etcd URLS --s3 URL/BUCKET [--node-id ID] [--advertise URL]
                        [--cluster-prefix NAME] [--lease-ttl SECS] [--snapshot-every N]]
       memsilo models pull NAME [--from DIR]

Runs the memsilo HTTP server.
  --data DIR             data directory (env MEMSILO_DATA; default ./data)
  --embedder NAME|DIR    embedding model for new namespaces: a model2vec model name, a model
                         directory, or `hash` (env MEMSILO_EMBEDDER; default potion-base-8M)
  --listen ADDR          address to listen on (env MEMSILO_LISTEN; default 127.0.0.1:3300)
  --log-level LEVEL      off|error|warn|info|debug (env MEMSILO_LOG; default info)
  --body-limit BYTES     largest request body (default 16777216)
  --request-timeout SECS longest time a request may take (default 30)
  --metrics-token TOKEN  bearer token that may read GET /metrics besides the admin key
                         (env MEMSILO_METRICS_TOKEN; default: the admin key only)
  --audit-retention-days DAYS
                         days audit entries are kept (env MEMSILO_AUDIT_RETENTION_DAYS;
                         default: forever)
  --keyring DIR          where encryption keys are kept (tenants' own keys): a directory
                         outside the data directory, or `env:` for MEMSILO_KEY_<ID>
                         variables (env MEMSILO_KEYRING; default: none)

Cluster mode (a build with the cargo feature `cluster`; see the book's chapter \"Cluster\"):
  --cluster              join a cluster: control plane in etcd, namespaces' logs on S3; the
                         data directory becomes a cache of the namespaces this node owns
  --etcd URLS            etcd client URLs, comma-separated (env MEMSILO_ETCD)
  --s3 URL/BUCKET        S3 endpoint and bucket, e.g. https://s3.eu-west-1.amazonaws.com/b
                         (env MEMSILO_S3; credentials from AWS_ACCESS_KEY_ID etc.)
  --node-id ID           this node's id (env MEMSILO_NODE_ID; default: the listen address)
  --advertise URL        URL other nodes forward to (env MEMSILO_ADVERTISE; default:
                         http://LISTEN-ADDRESS)
  --cluster-prefix NAME  key prefix in etcd and the bucket (default memsilo)
  --lease-ttl SECS       how long a dead node keeps its namespaces (default 10)
  --snapshot-every N     snapshot a namespace to the bucket every N log objects, so loading
                         it reads the snapshot and the log after it (default 256; 0: never)

The admin key is MEMSILO_ADMIN_KEY; without it, one is generated on first start and
printed once. Stops cleanly on SIGINT or SIGTERM.

`models pull` installs a model into the user cache (~/.cache/memsilo/models/NAME, or
MEMSILO_CACHE_DIR/models/NAME): downloaded from the Hugging Face hub (MEMSILO_HF_ENDPOINT or
HF_ENDPOINT for a mirror), or copied from DIR (config.json, tokenizer.json, model.safetensors).";

#[derive(Debug, PartialEq)]
struct ServeArgs {
    data: String,
    listen: String,
    log_level: Level,
    body_limit: usize,
    request_timeout: Duration,
    metrics_token: Option<String>,
    embedder: Option<String>,
    audit_retention_days: Option<u32>,
    keyring: Option<String>,
    cluster: Option<Box<ClusterArgs>>,
}

/// `--cluster` and its settings.
#[derive(Debug, PartialEq)]
struct ClusterArgs {
    etcd: Vec<String>,
    s3: String,
    node_id: Option<String>,
    advertise: Option<String>,
    prefix: String,
    lease_ttl: i64,
    snapshot_every: u64,
}

#[derive(Debug, PartialEq)]
enum Command {
    Serve(ServeArgs),
    Pull { name: String, from: Option<String> },
    Transfer(crate::transfer::TransferArgs),
    Upgrade(crate::upgrade::UpgradeArgs),
    Help,
    Version,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter().peekable();
    match it.peek().map(|a| a.as_str()) {
        None | Some("help" | "-h" | "--help") => return Ok(Command::Help),
        Some("version" | "-V" | "--version") => return Ok(Command::Version),
        Some("serve") => {
            it.next();
        }
        Some("models") => return parse_models(&args[1..]),
        Some("upgrade") => {
            if args[1..].iter().any(|a| a == "-h" || a == "--help") {
                return Ok(Command::Help);
            }
            return crate::upgrade::parse(&args[1..]).map(Command::Upgrade);
        }
        Some(verb @ ("export" | "import")) => {
            let rest: Vec<String> = it.skip(1).cloned().collect();
            if rest.iter().any(|a| a == "-h" || a == "--help") {
                return Ok(Command::Help);
            }
            return crate::transfer::parse(verb == "export", &rest).map(Command::Transfer);
        }
        // `memsilo --data DIR ...` means `memsilo serve --data DIR ...`.
        Some(flag) if flag.starts_with("--") => {}
        Some(other) => return Err(format!("unknown command {other:?}")),
    }
    let mut data = env("MEMSILO_DATA").unwrap_or_else(|| "./data".into());
    let mut listen = env("MEMSILO_LISTEN").unwrap_or_else(|| "127.0.0.1:3300".into());
    let mut level = env("MEMSILO_LOG").unwrap_or_else(|| "info".into());
    let mut body_limit = ServeOptions::default().body_limit.to_string();
    let mut timeout = ServeOptions::default().request_timeout.as_secs().to_string();
    let mut metrics_token = env("MEMSILO_METRICS_TOKEN").unwrap_or_default();
    let mut embedder = env("MEMSILO_EMBEDDER").unwrap_or_default();
    let mut retention = env("MEMSILO_AUDIT_RETENTION_DAYS").unwrap_or_default();
    let mut keyring = env("MEMSILO_KEYRING").unwrap_or_default();
    let mut cluster = false;
    let mut c = ClusterFlags::from_env();
    while let Some(arg) = it.next() {
        if arg == "--cluster" {
            cluster = true;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        if matches!(flag, "-h" | "--help") {
            return Ok(Command::Help);
        }
        let slot = match flag {
            "--data" => &mut data,
            "--listen" => &mut listen,
            "--log-level" => &mut level,
            "--body-limit" => &mut body_limit,
            "--request-timeout" => &mut timeout,
            "--metrics-token" => &mut metrics_token,
            "--embedder" => &mut embedder,
            "--audit-retention-days" => &mut retention,
            "--keyring" => &mut keyring,
            "--etcd" => &mut c.etcd,
            "--s3" => &mut c.s3,
            "--node-id" => &mut c.node_id,
            "--advertise" => &mut c.advertise,
            "--cluster-prefix" => &mut c.prefix,
            "--lease-ttl" => &mut c.lease_ttl,
            "--snapshot-every" => &mut c.snapshot_every,
            other => return Err(format!("unknown option {other:?}")),
        };
        *slot = match inline {
            Some(v) => v,
            None => it.next().cloned().ok_or_else(|| format!("{flag} needs a value"))?,
        };
    }
    let log_level = Level::parse(&level).ok_or_else(|| format!("unknown log level {level:?}"))?;
    let body_limit =
        body_limit.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            format!("--body-limit must be a positive integer, got {body_limit:?}")
        })?;
    let secs =
        timeout.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            format!("--request-timeout must be a positive integer, got {timeout:?}")
        })?;
    let audit_retention_days = match retention.trim() {
        "" => None,
        days => Some(days.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            format!("--audit-retention-days must be a positive integer, got {days:?}")
        })?),
    };
    let cluster = if cluster { Some(Box::new(cluster_args(c)?)) } else { None };
    Ok(Command::Serve(ServeArgs {
        audit_retention_days,
        data,
        listen,
        log_level,
        body_limit,
        request_timeout: Duration::from_secs(secs),
        metrics_token: Some(metrics_token.trim().to_owned()).filter(|t| !t.is_empty()),
        embedder: Some(embedder).filter(|e| !e.trim().is_empty()),
        keyring: Some(keyring).filter(|k| !k.trim().is_empty()),
        cluster,
    }))
}

/// The cluster flags as given (checked by [`cluster_args`]).
struct ClusterFlags {
    etcd: String,
    s3: String,
    node_id: String,
    advertise: String,
    prefix: String,
    lease_ttl: String,
    snapshot_every: String,
}

impl ClusterFlags {
    fn from_env() -> Self {
        ClusterFlags {
            etcd: env("MEMSILO_ETCD").unwrap_or_default(),
            s3: env("MEMSILO_S3").unwrap_or_default(),
            node_id: env("MEMSILO_NODE_ID").unwrap_or_default(),
            advertise: env("MEMSILO_ADVERTISE").unwrap_or_default(),
            prefix: "memsilo".to_owned(),
            lease_ttl: "10".to_owned(),
            snapshot_every: "256".to_owned(),
        }
    }
}

fn cluster_args(flags: ClusterFlags) -> Result<ClusterArgs, String> {
    let ClusterFlags { etcd, s3, node_id, advertise, prefix, lease_ttl, snapshot_every } = flags;
    let etcd: Vec<String> =
        etcd.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
    if etcd.is_empty() {
        return Err("--cluster needs --etcd URLS".into());
    }
    if s3.trim().is_empty() {
        return Err("--cluster needs --s3 URL/BUCKET".into());
    }
    let lease_ttl = lease_ttl
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| (2..=3600).contains(n))
        .ok_or_else(|| format!("--lease-ttl must be 2 to 3600 seconds, got {lease_ttl:?}"))?;
    let snapshot_every = snapshot_every.trim().parse::<u64>().map_err(|_| {
        format!(
            "--snapshot-every must be a number of log objects (0: never), got {snapshot_every:?}"
        )
    })?;
    let some = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    Ok(ClusterArgs {
        etcd,
        s3: s3.trim().to_owned(),
        node_id: some(node_id),
        advertise: some(advertise),
        prefix,
        lease_ttl,
        snapshot_every,
    })
}

fn parse_models(args: &[String]) -> Result<Command, String> {
    match args {
        [pull, name] if pull == "pull" => Ok(Command::Pull { name: name.clone(), from: None }),
        [pull, name, from, dir] if pull == "pull" && from == "--from" => {
            Ok(Command::Pull { name: name.clone(), from: Some(dir.clone()) })
        }
        [pull, name, from] if pull == "pull" && from.starts_with("--from=") => {
            Ok(Command::Pull { name: name.clone(), from: Some(from["--from=".len()..].to_owned()) })
        }
        _ => Err("usage: memsilo models pull NAME [--from DIR]".into()),
    }
}

/// Exit code of a command that panicked (`EX_SOFTWARE`: a bug in memsilo).
pub const EXIT_PANIC: i32 = 70;

/// Runs the command line (`args` without the program name) and returns the exit code: 0
/// success, 1 failure, 2 usage error, [`EXIT_PANIC`] (70) when memsilo panicked. `serve`
/// blocks until SIGINT or SIGTERM, then finishes the requests in flight. A panic does not
/// unwind out of it, so the Python, Node and C bindings call it as it is.
pub fn run_cli(args: Vec<String>) -> i32 {
    memsilo::error::catch_panic(|| Ok(run_command(args))).unwrap_or_else(|e| {
        eprintln!("memsilo: {e}");
        EXIT_PANIC
    })
}

// Owned arguments: the Python, Node and Go packages hand over argv as they built it.
#[allow(clippy::needless_pass_by_value)]
fn run_command(args: Vec<String>) -> i32 {
    crate::log::install();
    let command = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "memsilo: {e}\n\n{USAGE}\n\n{}\n\n{}",
                crate::transfer::USAGE,
                crate::upgrade::USAGE
            );
            return 2;
        }
    };
    let args = match command {
        Command::Help => {
            return say(&format!(
                "{USAGE}\n\n{}\n\n{}",
                crate::transfer::USAGE,
                crate::upgrade::USAGE
            ));
        }
        Command::Version => return say(&format!("memsilo {}", env!("CARGO_PKG_VERSION"))),
        Command::Serve(a) => a,
        Command::Pull { name, from } => {
            let paths = ModelPaths::from_env();
            return match memsilo::pull_model(&paths, &name, from.as_deref().map(Path::new)) {
                Ok(dir) => say(&format!("memsilo: model {name} installed in {}", dir.display())),
                Err(e) => {
                    eprintln!("memsilo: cannot install model {name}: {e}");
                    1
                }
            };
        }
        Command::Upgrade(args) => {
            return match crate::upgrade::run(&args) {
                Ok(summary) => {
                    eprintln!("memsilo: {summary}");
                    0
                }
                Err(message) => {
                    eprintln!("memsilo: {message}");
                    1
                }
            };
        }
        Command::Transfer(t) => {
            return match crate::transfer::run(&t) {
                Ok(summary) => {
                    eprintln!("memsilo: {summary}");
                    0
                }
                Err(message) => {
                    eprintln!("memsilo: {message}");
                    1
                }
            };
        }
    };
    log::set_level(args.log_level);
    match serve_until_signal(&args) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("memsilo: {message}");
            1
        }
    }
}

fn serve_until_signal(args: &ServeArgs) -> Result<(), String> {
    let mut options = Options {
        audit_retention_days: args.audit_retention_days,
        keyring: args.keyring.as_ref().map(Into::into),
        ..Options::default()
    };
    // An installed model is loaded now: a broken one stops the server here, named.
    options.embedder = match &args.embedder {
        Some(setting) => memsilo::embedder_from_setting(setting)
            .map_err(|e| format!("--embedder {setting}: {e}"))?,
        None => memsilo::embedder_from_setting(memsilo::DEFAULT_MODEL)
            .map_err(|e| format!("model {}: {e}", memsilo::DEFAULT_MODEL))?,
    };
    let engine = Engine::open(&args.data, options)
        .map_err(|e| format!("cannot open data directory {}: {e}", args.data))?;
    admin_key(&engine)?;
    let listener = server::bind(&args.listen).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("cannot listen on {}: address already in use", args.listen)
        } else {
            format!("cannot listen on {}: {e}", args.listen)
        }
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let runtime = server::runtime().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let options = ServeOptions {
        listen: args.listen.clone(),
        body_limit: args.body_limit,
        request_timeout: args.request_timeout,
        metrics_token: args.metrics_token.clone(),
        ..ServeOptions::default()
    };
    let header_timeout = options.header_timeout;
    let (app, leave) = match &args.cluster {
        None => (server::router(engine, options), None),
        Some(cluster) => cluster_router(&runtime, cluster, engine, &addr, &options)?,
    };
    // Signal handlers are installed before the ready line, so a SIGTERM sent as soon as the
    // line is seen is a graceful shutdown, never the default action.
    let shutdown = {
        let _entered = runtime.enter();
        shutdown_signal().map_err(|e| format!("cannot install signal handlers: {e}"))?
    };
    eprintln!("memsilo listening on http://{addr}");
    if crate::console::is_built() {
        eprintln!("memsilo console at http://{addr}/console");
    } else {
        eprintln!("memsilo console not built into this binary (make console, then rebuild)");
    }
    runtime
        .block_on(crate::connections::run(app, listener, header_timeout, shutdown))
        .map_err(|e| format!("server failed: {e}"))?;
    // A cluster node leaves once its requests in flight are answered: its namespaces move now.
    if let Some(leave) = leave {
        runtime.block_on(leave);
    }
    log::log(Level::Info, format_args!("stopped"));
    Ok(())
}

/// What a cluster node does when it stops (see `memsilo_cluster::Node::leave`).
type Leave = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Joins the cluster (`--cluster`) and returns the node's router and what it does to leave.
#[cfg(feature = "cluster")]
fn cluster_router(
    runtime: &tokio::runtime::Runtime,
    args: &ClusterArgs,
    engine: Engine,
    addr: &std::net::SocketAddr,
    options: &ServeOptions,
) -> Result<(axum::Router, Option<Leave>), String> {
    let store = memsilo_cluster::object_store_from_url(&args.s3)?;
    let config = memsilo_cluster::Config {
        node_id: args.node_id.clone().unwrap_or_else(|| addr.to_string()),
        advertise_url: args.advertise.clone().unwrap_or_else(|| format!("http://{addr}")),
        etcd: args.etcd.clone(),
        prefix: args.prefix.clone(),
        lease_ttl: args.lease_ttl,
        snapshot_every: args.snapshot_every,
    };
    let node = runtime.block_on(memsilo_cluster::Node::start(config, engine, store))?;
    let leaving = node.clone();
    let leave: Leave = Box::pin(async move { leaving.leave().await });
    let router = crate::cluster::router(node, options.body_limit, options.metrics_token.clone());
    Ok((router, Some(leave)))
}

#[cfg(not(feature = "cluster"))]
fn cluster_router(
    _: &tokio::runtime::Runtime,
    _: &ClusterArgs,
    _: Engine,
    _: &std::net::SocketAddr,
    _: &ServeOptions,
) -> Result<(axum::Router, Option<Leave>), String> {
    Err("--cluster: this memsilo was built without cluster support (cargo feature `cluster` of memsilo-http)".into())
}

/// Installs the admin key from `MEMSILO_ADMIN_KEY`, or generates one on first start and
/// prints it once.
fn admin_key(engine: &Engine) -> Result<(), String> {
    if let Some(key) = env("MEMSILO_ADMIN_KEY") {
        if key.len() < 16 {
            eprintln!("memsilo: warning: MEMSILO_ADMIN_KEY is shorter than 16 characters; use a long random key outside tests");
        }
        return engine.set_admin_key(&key).map_err(|e| format!("MEMSILO_ADMIN_KEY: {e}"));
    }
    if !engine.has_admin_key() {
        let key = engine.generate_admin_key().map_err(|e| e.to_string())?;
        eprintln!("memsilo: generated an admin key (shown only now; set MEMSILO_ADMIN_KEY to choose your own):");
        eprintln!("memsilo: admin key: {key}");
    }
    Ok(())
}

/// Registers SIGINT and SIGTERM handlers now (inside a runtime context) and returns the
/// future that completes when either arrives.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            log::log(Level::Info, format_args!("shutting down; finishing requests in flight"));
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            log::log(Level::Info, format_args!("shutting down; finishing requests in flight"));
        })
    }
}

/// Writes `text` and a newline to standard output: 0, or 1 when it cannot be written. A reader
/// that closes the pipe early (`memsilo --help | head -1`) ends the output quietly, where
/// `println!` panicked with a backtrace.
fn say(text: &str) -> i32 {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("memsilo: cannot write to standard output: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_parse_in_both_forms_and_bad_values_are_refused() {
        let Command::Serve(a) =
            parse(&args("serve --data /tmp/x --listen=127.0.0.1:0 --log-level debug")).unwrap()
        else {
            panic!("not serve")
        };
        assert_eq!(
            (a.data.as_str(), a.listen.as_str(), a.log_level),
            ("/tmp/x", "127.0.0.1:0", Level::Debug)
        );
        assert!(parse(&args("serve --log-level loud")).is_err());
        assert!(parse(&args("serve --data")).is_err());
        assert!(parse(&args("serve --bogus 1")).is_err());
        assert!(parse(&args("frobnicate")).is_err());
        assert_eq!(parse(&args("serve --help")).unwrap(), Command::Help);
        let Command::Serve(bare) = parse(&args("--data /tmp/y")).unwrap() else {
            panic!("not serve")
        };
        assert_eq!(bare.data, "/tmp/y");
        let Command::Serve(m) = parse(&args("serve --metrics-token scrape-me")).unwrap() else {
            panic!("not serve")
        };
        assert_eq!(m.metrics_token.as_deref(), Some("scrape-me"));
        let Command::Serve(e) = parse(&args("serve --embedder hash")).unwrap() else {
            panic!("not serve")
        };
        assert_eq!((e.embedder.as_deref(), e.audit_retention_days), (Some("hash"), None));
        let Command::Serve(kept) = parse(&args("--audit-retention-days 90")).unwrap() else {
            panic!("not serve")
        };
        assert_eq!(kept.audit_retention_days, Some(90));
        let Command::Serve(keyring) = parse(&args("serve --keyring /etc/memsilo/keys")).unwrap()
        else {
            panic!("not serve")
        };
        assert_eq!(keyring.keyring.as_deref(), Some("/etc/memsilo/keys"));
        assert!(parse(&args("serve --keyring")).is_err());
        assert!(parse(&args("--audit-retention-days 0")).is_err());
        assert_eq!(
            parse(&args("models pull potion-base-8M --from /m")).unwrap(),
            Command::Pull { name: "potion-base-8M".into(), from: Some("/m".into()) }
        );
        assert!(parse(&args("models fetch x")).is_err());
        let Command::Serve(c) =
            parse(&args("serve --cluster --etcd http://a:1,http://b:2 --s3 http://s:3/bk"))
                .unwrap()
        else {
            panic!("not serve")
        };
        let c = c.cluster.unwrap();
        assert_eq!((c.etcd.len(), c.s3.as_str(), c.lease_ttl), (2, "http://s:3/bk", 10));
        assert_eq!(c.snapshot_every, 256);
        assert!(
            parse(&args("serve --cluster --etcd http://a:1 --s3 x --snapshot-every -1")).is_err()
        );
        assert!(parse(&args("serve --cluster --s3 http://s:3/bk")).is_err());
        assert!(parse(&args("serve --cluster --etcd http://a:1 --s3 x --lease-ttl 1")).is_err());
        let Command::Serve(single) = parse(&args("serve")).unwrap() else { panic!("not serve") };
        assert!(single.cluster.is_none());
    }
}
