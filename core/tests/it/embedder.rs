//! The default static embedder on real potion-base-8M weights (`make models` puts them in
//! `target/models`): recall by meaning, the namespace's recorded embedder, bad model
//! directories, and fetching a model from a hub served by a local HTTP server.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memsilo::{
    load_model, pull_model, Embedder, Engine, Error, ErrorCode, HashEmbedder, ModelEmbedder,
    ModelPaths, NamespaceOptions, Options, Recall, RecallMode, StoreMemory,
};
use sha2::Digest;

/// The potion-base-8M directory fetched by `make models`.
pub fn model_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    let dir = target.join("models/potion-base-8M");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} has no model: run `make models` first",
        dir.display()
    );
    dir
}

const GUIDE: [&str; 3] =
    ["Q3 roadmap: Omega in Sept", "Hiring 4 ML engineers", "Budget: $2.4M allocated"];

fn engine_with(embedder: Arc<dyn Embedder>) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, embedder, ..Options::default() })
            .unwrap();
    (dir, engine)
}

fn top(engine: &Engine, ns: &str, query: &str) -> String {
    let hits = engine.root().recall(Recall::text(query).namespace(ns).top_k(3)).unwrap();
    hits[0].content.clone()
}

fn store_guide(engine: &Engine, ns: &str) {
    engine.root().create_namespace(ns, NamespaceOptions::default()).unwrap();
    let batch = GUIDE.iter().map(|t| StoreMemory::text(*t)).collect();
    engine.root().store_memories(ns, batch).unwrap();
}

#[test]
fn the_static_model_recalls_the_guides_memories_by_meaning() {
    let (_d, engine) = engine_with(Arc::new(ModelEmbedder::at_path(model_dir())));
    store_guide(&engine, "acme");
    assert_eq!(top(&engine, "acme", "recruiting"), "Hiring 4 ML engineers");
    assert_eq!(top(&engine, "acme", "how much money do we have"), "Budget: $2.4M allocated");
    let ns = engine.root().get_namespace("acme").unwrap();
    assert_eq!(ns.embedder.as_deref(), Some("potion-base-8M"));
    assert_eq!(ns.dimensions, Some(256));
}

#[test]
fn hybrid_recall_with_the_static_model_matches_related_words() {
    let (_d, engine) = engine_with(Arc::new(ModelEmbedder::at_path(model_dir())));
    let root = engine.root();
    root.create_namespace("chat", NamespaceOptions::default()).unwrap();
    let turns = [
        "Caroline: I adopted a puppy from the shelter",
        "Melanie: Caroline, the school trip is on Friday",
        "Caroline: Our clinic downtown is hiring two nurses for the night shift next month",
        "Melanie: I painted the lake at sunset",
        "Caroline: I love the new bakery",
    ];
    root.store_memories("chat", turns.iter().map(|t| StoreMemory::text(*t)).collect()).unwrap();
    let ask = |mode| {
        let r = Recall { mode: Some(mode), ..Recall::text("Is Caroline recruiting staff?") };
        root.recall(r.namespace("chat").top_k(5)).unwrap()
    };
    // BM25 sees only the name, and ranks the shorter turns that hold it first.
    let by_keyword = ask(RecallMode::Keyword);
    assert_ne!(by_keyword[0].content, turns[2]);
    // The token match finds "hiring" for "recruiting" and "nurses" for "staff".
    let hybrid = ask(RecallMode::Hybrid);
    assert_eq!(hybrid[0].content, turns[2], "{hybrid:#?}");
    assert!(hybrid[0].keyword_score.is_some() && hybrid[0].vector_score.is_some());
}

/// With the token match, hybrid recall ranks the candidates by cosine and BM25 first and
/// reranks the best 75 with the token match; a larger `top_k` still gets that many hits,
/// best first, each with both scores.
#[test]
fn hybrid_recall_with_the_static_model_returns_every_hit_asked_for() {
    let (_d, engine) = engine_with(Arc::new(ModelEmbedder::at_path(model_dir())));
    let root = engine.root();
    root.create_namespace("chat", NamespaceOptions::default()).unwrap();
    let topics = ["the school trip", "a puppy from the shelter", "the lake at sunset", "bread"];
    let turns: Vec<String> = (0..120)
        .map(|i| format!("Caroline, turn {i}: we talked about {}", topics[i % topics.len()]))
        .collect();
    root.store_memories("chat", turns.iter().map(|t| StoreMemory::text(t.as_str())).collect())
        .unwrap();
    let hits =
        root.recall(Recall::text("Caroline's new puppy").namespace("chat").top_k(100)).unwrap();
    assert_eq!(hits.len(), 100);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(hits.iter().all(|h| h.keyword_score.is_some() && h.vector_score.is_some()));
    assert!(hits[0].content.contains("puppy"), "{:?}", hits[0].content);
}

#[test]
fn a_namespace_keeps_its_embedder_when_the_default_changes() {
    let dir = tempfile::tempdir().unwrap();
    let open = |e: Arc<dyn Embedder>| {
        Engine::open(dir.path(), Options { background: false, embedder: e, ..Options::default() })
            .unwrap()
    };
    // Written while no model was available: the hashing embedder is recorded.
    let engine = open(Arc::new(HashEmbedder::default()));
    store_guide(&engine, "old");
    drop(engine);
    let engine = open(Arc::new(ModelEmbedder::at_path(model_dir())));
    store_guide(&engine, "new");
    engine
        .root()
        .store_memory(StoreMemory { namespace: Some("old".into()), ..StoreMemory::text("more") })
        .unwrap();
    let old = engine.root().get_namespace("old").unwrap();
    assert_eq!((old.embedder.as_deref(), old.dimensions), (Some("memsilo-hash-384-v1"), Some(384)));
    assert_eq!(
        engine.root().recall(Recall::text("budget").namespace("old")).unwrap()[0].content,
        "Budget: $2.4M allocated"
    );
    assert_eq!(top(&engine, "new", "recruiting"), "Hiring 4 ML engineers");
}

#[test]
fn an_unavailable_model_falls_back_to_hashing_recorded_as_such() {
    let missing = tempfile::tempdir().unwrap();
    let (_d, engine) = engine_with(Arc::new(ModelEmbedder::at_path(missing.path().join("nope"))));
    store_guide(&engine, "acme");
    let ns = engine.root().get_namespace("acme").unwrap();
    assert_eq!(ns.embedder.as_deref(), Some("memsilo-hash-384-v1"));
}

/// A copy of the model whose matrix has `rows` rows.
fn model_with_rows(rows: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(model_dir().join(f), dir.path().join(f)).unwrap();
    }
    let data = vec![0u8; rows * 256 * 4];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![rows, 256], &data)
            .unwrap();
    safetensors::serialize_to_file(
        [("embeddings", view)],
        None,
        &dir.path().join("model.safetensors"),
    )
    .unwrap();
    dir
}

#[test]
fn a_matrix_that_does_not_fit_the_tokenizer_is_a_clear_error() {
    let dir = model_with_rows(100);
    let Err(e) = load_model(dir.path(), "bad") else { panic!("a 100-row matrix loaded") };
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let msg = e.to_string();
    assert!(msg.contains("100 rows") && msg.contains("29528 tokens"), "{msg}");
    let paths = ModelPaths {
        model_dir: None,
        cache_dir: Some(dir.path().join("cache")),
        endpoint: String::new(),
        offline: true,
    };
    let e = pull_model(&paths, "bad", Some(dir.path())).unwrap_err();
    assert!(e.to_string().contains("100 rows"), "{e}");
    assert!(!dir.path().join("cache/bad").exists(), "nothing installed");
}

/// A model directory given as the `embedder` setting (`MEMSILO_EMBEDDER`, `--embedder`) is
/// loaded at once: broken or missing, it is an error naming the setting and the file (a
/// model named that is not installed is left to its first use: a download, or hashing).
#[test]
fn a_broken_model_directory_in_the_setting_is_an_error_naming_the_file() {
    let wrong_shape = model_with_rows(100);
    let setting = wrong_shape.path().to_str().unwrap();
    let e = memsilo::embedder_from_setting(setting).map(|_| ()).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument { field, .. } if field == "embedder"), "{e}");
    assert!(
        e.to_string().contains("model.safetensors") && e.to_string().contains("100 rows"),
        "{e}"
    );

    let no_tokenizer = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(model_dir().join(f), no_tokenizer.path().join(f)).unwrap();
    }
    let e = memsilo::embedder_from_setting(no_tokenizer.path().to_str().unwrap())
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument { field, .. } if field == "embedder"), "{e}");
    assert!(e.to_string().contains("tokenizer.json: cannot read"), "{e}");

    let missing = no_tokenizer.path().join("nope");
    let e = memsilo::embedder_from_setting(missing.to_str().unwrap()).map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("nope/config.json: cannot read"), "{e}");

    // The working model loads; `hash` and names resolve lazily as before.
    let ok = memsilo::embedder_from_setting(model_dir().to_str().unwrap()).unwrap();
    assert_eq!((ok.name(), ok.dimensions()), ("potion-base-8M", 256));
    assert_eq!(memsilo::embedder_from_setting("hash").unwrap().name(), "memsilo-hash-384-v1");
}

/// A [`ModelEmbedder`] whose model is there but does not load (here a directory given with
/// a wrong-shape matrix; a copy found by name in `MEMSILO_MODEL_DIR` resolves the same way)
/// fails every embedding with the error naming the file: no fallback to hashing, and a text
/// write stores nothing (the namespace records no embedder). Vectors from the caller still
/// work.
#[test]
fn a_broken_model_fails_each_embedding_instead_of_falling_back() {
    let wrong_shape = model_with_rows(100);
    let embedder = ModelEmbedder::at_path(wrong_shape.path());
    let e = embedder.embed(&["hello"]).unwrap_err();
    assert!(matches!(&e, Error::InvalidArgument { field, .. } if field == "embedder"), "{e}");
    assert!(e.to_string().contains("model.safetensors") && e.to_string().contains("100 rows"));
    assert!(embedder.load_if_installed().is_err());

    let name = wrong_shape.path().file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(embedder.name(), name, "a broken model is known by what it was given as");
    let (_d, engine) = engine_with(Arc::new(embedder));
    let root = engine.root();
    root.create_namespace("n", NamespaceOptions::default()).unwrap();
    let e = root.store_memories("n", vec![StoreMemory::text("hello")]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("100 rows"), "{e}");
    assert_eq!(root.get_namespace("n").unwrap().embedder, None);
    let e = root.recall(Recall::text("hello").namespace("n")).unwrap_err();
    assert!(e.to_string().contains("100 rows"), "{e}");
    let vector = StoreMemory { embedding: Some(vec![1.0, 0.0]), ..StoreMemory::text("hello") };
    root.store_memories("n", vec![vector]).unwrap();
}

#[test]
fn pull_from_a_directory_installs_into_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let paths = ModelPaths {
        model_dir: None,
        cache_dir: Some(cache.path().to_owned()),
        endpoint: String::new(),
        offline: true,
    };
    assert!(paths.find("potion-base-8M").is_none());
    let dest = pull_model(&paths, "potion-base-8M", Some(&model_dir())).unwrap();
    assert_eq!(paths.find("potion-base-8M"), Some(dest.clone()));
    let e = load_model(&dest, "potion-base-8M").unwrap();
    assert_eq!(e.dimensions(), 256);
    // Offline and not installed: a clear error, nothing fetched.
    let err = paths.find_or_download("potion-base-32M").unwrap_err();
    assert!(err.to_string().contains("not installed"), "{err}");
}

/// A hub on a loopback port serving the model's files as the Hugging Face hub does: the
/// matrix through a redirect carrying its SHA-256, the small files with their git blob id.
/// `corrupt` flips a byte of the matrix after its checksum was announced.
fn serve_hub(files: &Path, corrupt: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let files = files.to_owned();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut line).unwrap();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line.split(' ').nth(1).unwrap_or("").to_owned();
            let response = |status: &str, headers: &str, body: &[u8]| {
                let mut r = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(body);
                r
            };
            let out = if let Some(file) = path.strip_prefix("/minishlab/tiny/resolve/main/") {
                let body = std::fs::read(files.join(file)).unwrap();
                if file == "model.safetensors" {
                    let sha = hex(&sha2::Sha256::digest(&body));
                    response(
                        "302 Found",
                        &format!("Location: /cdn/{file}\r\nX-Linked-Etag: \"{sha}\"\r\n"),
                        b"",
                    )
                } else {
                    let mut h = sha1::Sha1::new();
                    h.update(format!("blob {}\0", body.len()).as_bytes());
                    h.update(&body);
                    response("200 OK", &format!("ETag: \"{}\"\r\n", hex(&h.finalize())), &body)
                }
            } else if let Some(file) = path.strip_prefix("/cdn/") {
                let mut body = std::fs::read(files.join(file)).unwrap();
                if corrupt {
                    let n = body.len() - 1;
                    body[n] ^= 1;
                }
                response("200 OK", "", &body)
            } else {
                response("404 Not Found", "", b"")
            };
            let _ = stream.write_all(&out);
        }
    });
    url
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

#[test]
fn a_model_is_downloaded_on_first_use_and_checked() {
    let cache = tempfile::tempdir().unwrap();
    let paths = |endpoint: String| ModelPaths {
        model_dir: None,
        cache_dir: Some(cache.path().to_owned()),
        endpoint,
        offline: false,
    };
    // A corrupted transfer is refused and leaves nothing behind.
    let bad = paths(serve_hub(&model_dir(), true));
    let e = bad.find_or_download("tiny").unwrap_err();
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0, "nothing half-written");

    let good = paths(serve_hub(&model_dir(), false));
    let dir = good.find_or_download("tiny").unwrap();
    assert_eq!(dir, cache.path().join("tiny"));
    let model = load_model(&dir, "tiny").unwrap();
    let v = model.embed(&["recruiting"]).unwrap();
    let want = load_model(&model_dir(), "x").unwrap().embed(&["recruiting"]).unwrap();
    assert_eq!(v, want, "the downloaded model is the served one");
    // Found in the cache from now on, even with the hub gone.
    assert_eq!(paths("http://127.0.0.1:9".into()).find_or_download("tiny").unwrap(), dir);
}

/// The hashing embedder, counting the texts it embeds.
struct Counting(HashEmbedder, std::sync::atomic::AtomicUsize);

impl Embedder for Counting {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn dimensions(&self) -> usize {
        self.0.dimensions()
    }
    fn embed(&self, texts: &[&str]) -> memsilo::Result<Vec<Vec<f32>>> {
        self.1.fetch_add(texts.len(), std::sync::atomic::Ordering::SeqCst);
        self.0.embed(texts)
    }
}

/// Storing the text an id holds again (a framework adding the same documents again) embeds
/// nothing: the stored vector is kept, and the memory is still recalled by that text. A new
/// text under the id, or a new id, is embedded.
#[test]
fn the_same_text_stored_again_under_its_id_is_not_embedded_again() {
    let counting = Arc::new(Counting(HashEmbedder::new(64), 0.into()));
    let (_d, engine) = engine_with(counting.clone());
    let root = engine.root();
    root.create_namespace("docs", NamespaceOptions::default()).unwrap();
    let embedded = || counting.1.load(std::sync::atomic::Ordering::SeqCst);
    let doc = |id: &str, text: &str| StoreMemory {
        id: Some(id.into()),
        namespace: Some("docs".into()),
        ..StoreMemory::text(text)
    };
    let first = root.store_memory(doc("d1", "the glacier lake above the trail")).unwrap();
    assert_eq!(embedded(), 1);
    let again = root.store_memory(doc("d1", "the glacier lake above the trail")).unwrap();
    assert_eq!(embedded(), 1, "the same text under its id is not embedded again");
    assert_eq!(again.created_at, first.created_at);
    root.store_memories(
        "docs",
        vec![doc("d1", "the glacier lake above the trail"), doc("d2", "night backups at two")],
    )
    .unwrap();
    assert_eq!(embedded(), 2, "only the new id's text is embedded");
    let hits = root
        .recall(Recall::text("glacier lake above the trail").namespace("docs").top_k(1))
        .unwrap();
    assert_eq!(hits[0].id, "d1");
    // The recall embedded its query.
    assert_eq!(embedded(), 3);
    root.store_memory(doc("d1", "quarterly revenue in europe")).unwrap();
    assert_eq!(embedded(), 4, "a new text under the id is embedded");
    let mut want = HashEmbedder::new(64).embed(&["quarterly revenue in europe"]).unwrap();
    memsilo::normalize(&mut want[0]);
    let got = root.get_memories(Some("docs"), &["d1".to_owned()], true).unwrap();
    assert_eq!(got[0].vector.as_ref(), Some(&want[0]));
}
