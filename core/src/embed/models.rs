//! Finding, fetching and loading embedding models by name.
//!
//! A model named `N` is looked for, in order, in an explicit directory (given to
//! [`ModelEmbedder::at_path`], the `embedder` setting or the CLI), in `MEMSILO_MODEL_DIR/N`,
//! in the user cache (`MEMSILO_CACHE_DIR`, else `$XDG_CACHE_HOME/memsilo`, else
//! `~/.cache/memsilo`, then `models/N`), and finally downloaded from the Hugging Face hub into
//! the cache (not when `MEMSILO_OFFLINE` or `HF_HUB_OFFLINE` is set). A model is loaded once
//! per process and shared by every engine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::hub::{self, MODEL_FILES};
use super::{Embedder, HashEmbedder, StaticEmbedder};
use crate::error::{Error, Result};

/// The default embedding model: model2vec's potion-base-8M (256 dimensions, 30 MB, MIT).
pub const DEFAULT_MODEL: &str = "potion-base-8M";

/// Where models are looked for and fetched from (read from the environment by
/// [`ModelPaths::from_env`]).
#[derive(Debug, Clone)]
pub struct ModelPaths {
    /// `MEMSILO_MODEL_DIR`: a directory holding models by name.
    pub model_dir: Option<PathBuf>,
    /// The user cache's model directory (`<cache>/models`).
    pub cache_dir: Option<PathBuf>,
    /// Hub endpoint (`MEMSILO_HF_ENDPOINT`, `HF_ENDPOINT`, else `https://huggingface.co`).
    pub endpoint: String,
    /// Never download (`MEMSILO_OFFLINE` or `HF_HUB_OFFLINE` set to anything but `0`).
    pub offline: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl ModelPaths {
    /// The paths the environment gives.
    pub fn from_env() -> Self {
        let cache = env("MEMSILO_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| env("XDG_CACHE_HOME").map(|d| Path::new(&d).join("memsilo")))
            .or_else(|| env("HOME").map(|h| Path::new(&h).join(".cache").join("memsilo")));
        let flag = |n: &str| env(n).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
        ModelPaths {
            model_dir: env("MEMSILO_MODEL_DIR").map(PathBuf::from),
            cache_dir: cache.map(|c| c.join("models")),
            endpoint: env("MEMSILO_HF_ENDPOINT")
                .or_else(|| env("HF_ENDPOINT"))
                .unwrap_or_else(|| "https://huggingface.co".into()),
            offline: flag("MEMSILO_OFFLINE") || flag("HF_HUB_OFFLINE"),
        }
    }

    /// Where the cache keeps model `name`.
    pub fn cached(&self, name: &str) -> Option<PathBuf> {
        Some(self.cache_dir.as_ref()?.join(name.replace('/', "--")))
    }

    /// An installed copy of model `name`, without downloading.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        let in_model_dir = self.model_dir.as_ref().map(|d| d.join(name.replace('/', "--")));
        [in_model_dir, self.cached(name)].into_iter().flatten().find(|d| is_model_dir(d))
    }

    /// An installed copy of `name`, downloading it into the cache if there is none.
    pub fn find_or_download(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        if let Some(dir) = self.find(name) {
            return Ok(dir);
        }
        if self.offline {
            return Err(Error::invalid(
                "embedder",
                format!("model {name} is not installed and downloads are off (MEMSILO_OFFLINE)"),
            ));
        }
        let dest = self.cached(name).ok_or_else(|| {
            Error::invalid("embedder", "no cache directory (set MEMSILO_CACHE_DIR or HOME)")
        })?;
        tracing::info!("downloading model {name} from {} into {}", self.endpoint, dest.display());
        hub::download(&self.endpoint, &hub_repo(name), &dest)?;
        Ok(dest)
    }
}

/// Whether `dir` holds a model's files.
fn is_model_dir(dir: &Path) -> bool {
    MODEL_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Model names are hub names: `potion-base-8M` or `owner/model`.
fn check_name(name: &str) -> Result<()> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 2 || !parts.iter().all(|p| ok_part(p)) {
        return Err(Error::invalid(
            "embedder",
            format!("{name:?} is not a model name (letters, digits, '.', '_', '-', one '/')"),
        ));
    }
    Ok(())
}

/// The hub repository of a model name: names without an owner are model2vec's.
fn hub_repo(name: &str) -> String {
    if name.contains('/') {
        name.to_owned()
    } else if name.eq_ignore_ascii_case("all-MiniLM-L6-v2") {
        format!("sentence-transformers/{name}")
    } else {
        format!("minishlab/{name}")
    }
}

/// Loads the model in `dir`: a BERT model (`"model_type": "bert"`) with the `minilm`
/// feature, a model2vec static model otherwise.
pub fn load_model(dir: &Path, name: &str) -> Result<Arc<dyn Embedder>> {
    let config: serde_json::Value = std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if config.get("model_type").and_then(serde_json::Value::as_str) == Some("bert") {
        #[cfg(feature = "minilm")]
        return Ok(Arc::new(super::MiniLmEmbedder::load(dir)?));
        #[cfg(not(feature = "minilm"))]
        return Err(Error::invalid(
            "embedder",
            format!("{} is a BERT model: build memsilo with the `minilm` feature", dir.display()),
        ));
    }
    Ok(Arc::new(StaticEmbedder::load(dir, name)?))
}

/// Models loaded in this process, by name (one copy of each matrix however many engines).
fn loaded() -> &'static Mutex<HashMap<String, Arc<dyn Embedder>>> {
    static LOADED: OnceLock<Mutex<HashMap<String, Arc<dyn Embedder>>>> = OnceLock::new();
    LOADED.get_or_init(Mutex::default)
}

/// The embedder recorded as `name` on a namespace: a hashing embedder, or a model found (or
/// fetched) by name. Loaded once per process.
pub(crate) fn by_name(name: &str) -> Result<Arc<dyn Embedder>> {
    if let Some(h) = HashEmbedder::from_name(name) {
        return Ok(Arc::new(h));
    }
    let mut map = loaded().lock();
    if let Some(e) = map.get(name) {
        return Ok(e.clone());
    }
    let dir = ModelPaths::from_env().find_or_download(name)?;
    let e = load_model(&dir, name)?;
    map.insert(name.to_owned(), e.clone());
    Ok(e)
}

/// Installs model `name` into the user cache: copied from `from` (a directory holding its
/// files, checked by loading it) or downloaded from the hub. Returns where it now is.
pub fn pull_model(paths: &ModelPaths, name: &str, from: Option<&Path>) -> Result<PathBuf> {
    check_name(name)?;
    let dest = paths.cached(name).ok_or_else(|| {
        Error::invalid("embedder", "no cache directory (set MEMSILO_CACHE_DIR or HOME)")
    })?;
    let Some(src) = from else {
        if is_model_dir(&dest) {
            return Ok(dest);
        }
        return paths.find_or_download(name).map(|_| dest);
    };
    if !is_model_dir(src) {
        return Err(Error::invalid(
            "from",
            format!("{} does not hold {}", src.display(), MODEL_FILES.join(", ")),
        ));
    }
    load_model(src, name)?;
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let partial =
        parent.join(format!(".{}.partial-{}", name.replace('/', "--"), std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    for f in MODEL_FILES {
        std::fs::copy(src.join(f), partial.join(f))?;
    }
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&partial, &dest)?;
    Ok(dest)
}

/// The engine's embedder for new namespaces: a model found by name or at a path, resolved on
/// first use. If no model can be had (none installed, and none downloaded) it says so once on
/// stderr, with how to install one, and embeds with the [`HashEmbedder`] instead (whose name
/// is then what namespaces record, so their vectors never mix with the model's). A model that
/// is there but does not load (its files in the directory given, or in the copy found by name
/// in `MEMSILO_MODEL_DIR` or the cache, but a file unreadable, a matrix that does not fit its
/// tokenizer) is not a fallback: every embedding fails with the `invalid_argument` error
/// naming `embedder` and the file, until it is fixed (and the process restarted).
pub struct ModelEmbedder {
    source: Source,
    resolved: OnceLock<Resolved>,
}

/// What a [`ModelEmbedder`] resolved to.
enum Resolved {
    Ready(Arc<dyn Embedder>),
    /// A model that is there but does not load: its error's field and reason.
    Broken {
        field: String,
        reason: String,
    },
}

impl Resolved {
    fn broken(e: Error) -> Resolved {
        match e {
            Error::InvalidArgument { field, reason } => Resolved::Broken { field, reason },
            e => Resolved::Broken { field: "embedder".into(), reason: e.to_string() },
        }
    }
}

enum Source {
    Named(String),
    Path(PathBuf),
    Hash,
}

impl std::fmt::Debug for ModelEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Named(n) => n.clone(),
            Source::Path(p) => p.display().to_string(),
            Source::Hash => "hash".into(),
        };
        f.debug_struct("ModelEmbedder").field("source", &source).finish_non_exhaustive()
    }
}

impl ModelEmbedder {
    /// The model called `name` (see the module docs for where it is looked for).
    pub fn named(name: impl Into<String>) -> Self {
        ModelEmbedder { source: Source::Named(name.into()), resolved: OnceLock::new() }
    }

    /// The model in directory `dir`, recorded under the directory's name.
    pub fn at_path(dir: impl Into<PathBuf>) -> Self {
        ModelEmbedder { source: Source::Path(dir.into()), resolved: OnceLock::new() }
    }

    /// From the `embedder` setting: `hash`, a model name, or a model directory (a value
    /// starting with `.` or `/`, or naming an existing directory).
    pub fn from_setting(setting: &str) -> Self {
        let s = setting.trim();
        if s.eq_ignore_ascii_case("hash") {
            ModelEmbedder { source: Source::Hash, resolved: OnceLock::new() }
        } else if let Some(dir) = setting_dir(s) {
            Self::at_path(dir)
        } else {
            Self::named(s)
        }
    }

    /// The `MEMSILO_EMBEDDER` setting, else [`DEFAULT_MODEL`].
    pub fn from_env() -> Self {
        env("MEMSILO_EMBEDDER")
            .map_or_else(|| Self::named(DEFAULT_MODEL), |s| Self::from_setting(&s))
    }

    /// The embedder, resolved on the first call; the error of a model that is there but does
    /// not load.
    fn get(&self) -> Result<&Arc<dyn Embedder>> {
        match self.resolved.get_or_init(|| self.resolve()) {
            Resolved::Ready(e) => Ok(e),
            Resolved::Broken { field, reason } => Err(Error::invalid(field, reason)),
        }
    }

    fn resolve(&self) -> Resolved {
        match &self.source {
            Source::Hash => Resolved::Ready(Arc::new(HashEmbedder::default())),
            Source::Named(name) => match by_name(name) {
                Ok(e) => Resolved::Ready(e),
                // Installed but broken: the user's to fix, not "no model can be had".
                Err(e) if ModelPaths::from_env().find(name).is_some() => Resolved::broken(e),
                Err(e) => Resolved::Ready(fallback(name, &e)),
            },
            Source::Path(dir) => {
                let name = dir_model_name(dir);
                match load_model(dir, name) {
                    Ok(e) => Resolved::Ready(e),
                    Err(e) if is_model_dir(dir) => Resolved::broken(e),
                    Err(e) => Resolved::Ready(fallback(name, &e)),
                }
            }
        }
    }

    /// Loads the model now if a copy is installed (found by name, or the directory given
    /// holds its files), so that a broken one is an error at once rather than at the first
    /// text embedded.
    /// A model not installed is left to its first use (a download, or the fallback).
    pub fn load_if_installed(&self) -> Result<()> {
        let installed = match &self.source {
            Source::Hash => true,
            Source::Path(dir) => is_model_dir(dir),
            Source::Named(name) => ModelPaths::from_env().find(name).is_some(),
        };
        if installed {
            self.get()?;
        }
        Ok(())
    }

    /// The name a broken model is known by (the embedder's name cannot fail).
    fn source_name(&self) -> &str {
        match &self.source {
            Source::Named(n) => n,
            Source::Path(dir) => dir_model_name(dir),
            Source::Hash => "hash",
        }
    }
}

/// The model directory an `embedder` setting names, if it names one: a value starting with
/// `.` or `/`, or naming an existing directory (else it is a model name: `owner/model` too).
fn setting_dir(setting: &str) -> Option<&Path> {
    let path = Path::new(setting);
    (setting.starts_with('.') || setting.starts_with('/') || path.is_dir()).then_some(path)
}

/// The name a model given as directory `dir` is known by: the directory's name.
pub(crate) fn dir_model_name(dir: &Path) -> &str {
    dir.file_name().and_then(|n| n.to_str()).unwrap_or("model")
}

/// The embedder of an `embedder` setting (`MEMSILO_EMBEDDER`, `memsilo serve --embedder`), as
/// [`ModelEmbedder::from_setting`] resolves it, except that an installed model is loaded now:
/// a directory given explicitly that is missing or broken (a missing file, a matrix whose
/// shape does not fit its tokenizer), or a broken copy found by name (in `MEMSILO_MODEL_DIR`
/// or the cache), is an `invalid_argument` error naming `embedder` and the file, not a
/// fallback to hashing that every namespace created meanwhile would keep. A model not
/// installed is resolved at its first use, as before (a download, or the fallback).
pub fn embedder_from_setting(setting: &str) -> Result<Arc<dyn Embedder>> {
    let s = setting.trim();
    if let Some(dir) = setting_dir(s) {
        return load_model(dir, dir_model_name(dir));
    }
    let e = ModelEmbedder::from_setting(s);
    e.load_if_installed()?;
    Ok(Arc::new(e))
}

/// [`embedder_from_setting`] of the `MEMSILO_EMBEDDER` setting, else of [`DEFAULT_MODEL`]:
/// what an application or server opening a data directory embeds with.
pub fn embedder_from_env() -> Result<Arc<dyn Embedder>> {
    embedder_from_setting(env("MEMSILO_EMBEDDER").as_deref().unwrap_or(DEFAULT_MODEL))
}

/// Says once per process and model why it is unavailable, and hands out the hashing embedder.
fn fallback(name: &str, why: &Error) -> Arc<dyn Embedder> {
    static WARNED: OnceLock<Mutex<std::collections::HashSet<String>>> = OnceLock::new();
    if WARNED.get_or_init(Mutex::default).lock().insert(name.to_owned()) {
        tracing::warn!(
            "warning: embedding model {name} is not available ({why}).\n\
             memsilo: new namespaces will use the hashing embedder, which matches spelling, not \
             meaning.\nmemsilo: install the model with `memsilo models pull {name}` (or \
             `memsilo models pull {name} --from DIR` offline), or set MEMSILO_MODEL_DIR."
        );
    }
    Arc::new(HashEmbedder::default())
}

impl Embedder for ModelEmbedder {
    /// The model's name (a broken model's: the name or directory it was given as).
    fn name(&self) -> &str {
        self.get().map_or_else(|_| self.source_name(), |e| e.name())
    }

    /// 0 for a broken model.
    fn dimensions(&self) -> usize {
        self.get().map_or(0, |e| e.dimensions())
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.get()?.embed(texts)
    }

    /// Not before the model is loaded (its first use loads it).
    fn is_fast(&self) -> bool {
        matches!(self.resolved.get(), Some(Resolved::Ready(e)) if e.is_fast())
    }

    fn token_match(&self, query: &str, texts: &[&str]) -> Result<Option<Vec<f64>>> {
        self.get()?.token_match(query, texts)
    }
}
