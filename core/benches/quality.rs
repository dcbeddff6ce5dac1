//! Retrieval quality on public conversational-memory benchmarks with evidence labels (issue
//! 17). `LoCoMo` (Maharana et al., ACL 2024, `data/locomo10.zip` of the snap-research/locomo
//! repository: ten long conversations, ~2,000 questions, each naming the dialogue turns that hold
//! its answer): each conversation's turns are stored in one namespace (one memory per turn,
//! "speaker: text"). `LongMemEval` (Wu et al., ICLR 2025; see [`load_longmemeval`]): each
//! question's haystack of sessions in a namespace of its own, evidence by session. Each
//! question is recalled, and the evidence is looked for in the top k. Prints hit@k (any
//! evidence in the top k), recall@k (the share of the evidence in the top k) and nDCG@10, over
//! every question and over the held-out half of `LoCoMo`'s conversations (see `tuning`; every
//! `LongMemEval` question is held out: nothing is tuned on it), for: hashing embedder, static
//! default (potion-base-8M), `MiniLM` (`MEMSILO_MINILM_DIR`, feature `minilm`), keyword only
//! (BM25), hybrid with each embedder; and writes them as CSV for the chart. On `LoCoMo`, with
//! `QUALITY_SWEEP=1` it also replays fusions of the default model's two rankings (see
//! `sweep`), with `QUALITY_SWEEP=match` the fusion with the static model's token match (see
//! `sweep_match`), and with `QUALITY_SWEEP=experiments` other scalings, pseudo-relevance
//! feedback and question-word handling (see `experiments`); the rerank sweep takes
//! `RERANK_SCALES` and, with `QUALITY_TM_IDF_ALL=1`, the token match's idf over the whole
//! conversation (see `prepare`). Adversarial questions (category 5: the answer is not in the
//! conversation) are left out. Asserts nothing.
//!
//! `make bench-quality DATA=<dir of LoCoMo's conversation files | LongMemEval JSON file>`
//! (release; needs the data, kept out of git, and `make models`).

/// The allocator of the `memsilo` binary and the language bindings, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use memsilo::{
    Embedder, Engine, HashEmbedder, NamespaceOptions, Options, Recall, RecallMode, StoreMemory,
};
use serde_json::Value;

/// One namespace's worth of a benchmark: its turns (evidence label, text) and questions (text,
/// evidence labels), and whether its questions choose parameters (see [`tuning`]). A label
/// is a `LoCoMo` turn's dialogue id, or a `LongMemEval` turn's session id (several turns share
/// one: a question's evidence is found when any turn of an evidence session is).
struct Conversation {
    name: String,
    tune: bool,
    turns: Vec<(String, String)>,
    questions: Vec<(String, Vec<String>)>,
}

/// The benchmark `DATA` names: `LongMemEval` for a `.json` file, `LoCoMo` for a directory.
fn load(data: &Path) -> (&'static str, Vec<Conversation>) {
    if data.is_file() {
        ("LongMemEval", load_longmemeval(data))
    } else {
        ("LoCoMo", load_locomo(data))
    }
}

/// The most bytes of a memory's text (the engine's limit; a longer turn is cut at a character
/// boundary).
const MAX_TEXT: usize = 64 * 1024;

/// `LongMemEval` (Wu et al., ICLR 2025; `longmemeval_s*.json`, `longmemeval_m*.json` or
/// `longmemeval_oracle.json`): 500 questions, each with its own haystack of chat sessions and
/// the ids of the sessions that hold its answer. Each question's haystack goes into a
/// namespace of its own, one memory per turn ("user: text" / "assistant: text"), labelled
/// with its session's id; abstention questions (`_abs`: the answer is in no session) are left
/// out, as the paper leaves them out of its retrieval metrics. Nothing is tuned on it.
fn load_longmemeval(file: &Path) -> Vec<Conversation> {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("DATA={}: {e}", file.display()));
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("DATA={}: not LongMemEval's JSON: {e}", file.display()));
    let strings = |x: &Value| -> Vec<String> {
        x.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
    };
    v.as_array()
        .unwrap_or_else(|| panic!("DATA={}: expected an array of questions", file.display()))
        .iter()
        .filter_map(|q| {
            let id = q["question_id"].as_str()?;
            if id.ends_with("_abs") {
                return None;
            }
            let evidence = strings(&q["answer_session_ids"]);
            let sessions = strings(&q["haystack_session_ids"]);
            let turns: Vec<(String, String)> = sessions
                .iter()
                .zip(q["haystack_sessions"].as_array()?)
                .flat_map(|(sid, turns)| {
                    turns.as_array().into_iter().flatten().filter_map(move |t| {
                        let content = t["content"].as_str()?.trim();
                        let mut text = format!("{}: {content}", t["role"].as_str()?);
                        let mut cut = MAX_TEXT.min(text.len());
                        while !text.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        text.truncate(cut);
                        (!content.is_empty()).then(|| (sid.clone(), text))
                    })
                })
                .collect();
            let question = q["question"].as_str()?.to_owned();
            (!evidence.is_empty()).then(|| Conversation {
                name: id.to_owned(),
                tune: false,
                turns,
                questions: vec![(question, evidence)],
            })
        })
        .collect()
}

fn load_locomo(dir: &Path) -> Vec<Conversation> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("DATA={}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            let mut sessions: Vec<(usize, &Vec<Value>)> = v
                .as_object()
                .unwrap()
                .iter()
                .filter_map(|(k, s)| {
                    let n = k.strip_prefix("session_")?.parse().ok()?;
                    Some((n, s.as_array()?))
                })
                .collect();
            sessions.sort_by_key(|s| s.0);
            let turns = sessions
                .iter()
                .flat_map(|(_, turns)| turns.iter())
                .filter_map(|t| {
                    let id = t["dia_id"].as_str()?.to_owned();
                    let text = format!("{}: {}", t["speaker"].as_str()?, t["text"].as_str()?);
                    Some((id, text))
                })
                .collect();
            let questions = v["qa"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|q| q["category"].as_u64() != Some(5))
                .filter_map(|q| {
                    let evidence: Vec<String> = q["evidence"]
                        .as_array()?
                        .iter()
                        .filter_map(Value::as_str)
                        .flat_map(|e| e.split([';', ',']).map(|x| x.trim().to_owned()))
                        .collect();
                    let question = q["question"].as_str()?.to_owned();
                    (!evidence.is_empty()).then_some((question, evidence))
                })
                .collect();
            let name = f.file_stem().unwrap().to_string_lossy().into_owned();
            Conversation { name, tune: tuning(i), turns, questions }
        })
        .collect()
}

#[derive(Default, Clone)]
struct Scores {
    questions: usize,
    hit: [f64; 3],
    recall: [f64; 3],
    ndcg10: f64,
    /// Each question's hit@10, in order (for [`margin_interval`]).
    hits10: Vec<bool>,
}

const KS: [usize; 3] = [1, 5, 10];

/// The largest `top_k` a recall takes: hybrid recall then fuses that many of each ranking,
/// more than a `LoCoMo` conversation's turns.
const LARGEST_TOP_K: usize = 1000;

impl Scores {
    /// Adds one question: `ranked`, the evidence labels of its top hits, best first (a label
    /// counts at its first place only: several `LongMemEval` turns share a session's).
    fn add(&mut self, ranked: &[&str], evidence: &[String]) {
        let wanted: HashSet<&str> = evidence.iter().map(String::as_str).collect();
        let mut seen = HashSet::new();
        let first: Vec<bool> =
            ranked.iter().map(|d| wanted.contains(*d) && seen.insert(*d)).collect();
        self.questions += 1;
        for (i, k) in KS.iter().enumerate() {
            let found = first.iter().take(*k).filter(|f| **f).count();
            self.hit[i] += f64::from(u8::from(found > 0));
            if *k == 10 {
                self.hits10.push(found > 0);
            }
            self.recall[i] += found as f64 / wanted.len() as f64;
        }
        let dcg: f64 = first
            .iter()
            .take(10)
            .enumerate()
            .filter(|(_, f)| **f)
            .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
            .sum();
        let ideal: f64 = (0..wanted.len().min(10)).map(|i| 1.0 / (i as f64 + 2.0).log2()).sum();
        self.ndcg10 += dcg / ideal;
    }

    /// hit@1, hit@5, hit@10, recall@1, recall@5, recall@10, nDCG@10.
    fn values(&self) -> [f64; 7] {
        let n = self.questions.max(1) as f64;
        let (h, r) = (self.hit, self.recall);
        [h[0] / n, h[1] / n, h[2] / n, r[0] / n, r[1] / n, r[2] / n, self.ndcg10 / n]
    }
}

/// Whether the `i`-th conversation (in file-name order) is one of those whose questions choose
/// the fusion's parameters: every other one, from the first. The others are held out, and the
/// numbers on them are the ones to believe.
fn tuning(i: usize) -> bool {
    i.is_multiple_of(2)
}

/// Scores over every question, the tuning half's and the held-out half's.
#[derive(Default, Clone)]
struct Split {
    all: Scores,
    tune: Scores,
    held: Scores,
}

impl Split {
    fn add(&mut self, tune: bool, ranked: &[&str], evidence: &[String]) {
        self.all.add(ranked, evidence);
        if tune { &mut self.tune } else { &mut self.held }.add(ranked, evidence);
    }
}

/// One question's every memory with its cosine similarity and BM25 score, as a hybrid recall
/// deep enough to see the whole namespace returns them: enough to replay any fusion of the two
/// rankings outside the engine.
struct Pool {
    tune: bool,
    question: String,
    evidence: Vec<String>,
    /// The conversation's index (for its memories' embeddings) and the question's embedding.
    conv: usize,
    query: Vec<f32>,
    /// (dialogue id, similarity, BM25), in the engine's order.
    memories: Vec<(String, f64, f64)>,
}

/// Stores every conversation with `embedder`, then scores each mode over every question (and
/// keeps each question's [`Pool`] if `pools`).
fn run(
    label: &str,
    embedder: Arc<dyn Embedder>,
    conversations: &[Conversation],
    modes: &[(&str, RecallMode)],
    pools: bool,
) -> (Vec<(String, Split)>, Vec<Pool>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        Options { background: false, embedder: embedder.clone(), ..Options::default() },
    )
    .unwrap();
    let root = engine.root();
    let mut out: Vec<(String, Split)> =
        modes.iter().map(|(m, _)| (format!("{m} ({label})"), Split::default())).collect();
    let mut kept = Vec::new();
    let started = Instant::now();
    for (i, c) in conversations.iter().enumerate() {
        let ns = format!("conv-{i}");
        root.create_namespace(&ns, NamespaceOptions::default()).unwrap();
        let mut by_id = HashMap::new();
        for chunk in c.turns.chunks(1000) {
            let batch = chunk.iter().map(|(_, text)| StoreMemory::text(text.as_str())).collect();
            let ids = root.store_memories(&ns, batch).unwrap();
            by_id.extend(ids.into_iter().zip(chunk.iter().map(|(d, _)| d.clone())));
        }
        for (question, evidence) in &c.questions {
            for ((_, mode), (_, s)) in modes.iter().zip(out.iter_mut()) {
                let recall = Recall {
                    mode: Some(*mode),
                    ..Recall::text(question.as_str()).namespace(ns.as_str()).top_k(10)
                };
                let hits = root.recall(recall).unwrap();
                let ranked: Vec<&str> = hits.iter().map(|h| by_id[&h.id].as_str()).collect();
                s.add(c.tune, &ranked, evidence);
            }
            if pools {
                let every =
                    Recall::text(question.as_str()).namespace(ns.as_str()).top_k(LARGEST_TOP_K);
                let hits = root.recall(every).unwrap();
                assert!(hits.len() >= c.turns.len().min(LARGEST_TOP_K) * 9 / 10);
                let memories = hits
                    .iter()
                    .map(|h| {
                        let v = h.vector_score.unwrap_or(h.similarity);
                        (by_id[&h.id].clone(), v, h.keyword_score.unwrap_or(0.0))
                    })
                    .collect();
                let query = embedder.embed(&[question.as_str()]).unwrap().remove(0);
                kept.push(Pool {
                    tune: c.tune,
                    question: question.clone(),
                    evidence: evidence.clone(),
                    conv: i,
                    query,
                    memories,
                });
            }
        }
    }
    eprintln!("{label}: {:.1} s", started.elapsed().as_secs_f64());
    (out, kept)
}

/// A way to fuse the vector and keyword rankings (replayed on [`Pool`]s).
#[derive(Debug, Clone, Copy)]
enum Fusion {
    /// Reciprocal rank: 1 / (k + vector rank) + keyword weight / (k + keyword rank).
    Rrf { k: f64, keyword_weight: f64 },
    /// w · cosine + (1 - w) · BM25 / the best BM25 (what `vector_weight` does).
    Weighted { w: f64 },
    /// w · min-max scaled cosine + (1 - w) · min-max scaled BM25, over the candidates.
    MinMax { w: f64 },
}

/// The top 10 of `pool` fused by `fusion` over the best `depth` of each ranking.
/// The candidates a fusion over the best `depth` of each ranking sees, as indices into
/// `m` (the pool's memories): the best `depth` by cosine, then those of the best `depth` by
/// BM25 not among them, as the engine gathers them.
fn candidates(m: &[(String, f64, f64)], depth: usize) -> Vec<usize> {
    candidates_of(m, depth, depth)
}

/// [`candidates`] with the best `dv` by cosine and the best `dk` by BM25.
fn candidates_of(m: &[(String, f64, f64)], dv: usize, dk: usize) -> Vec<usize> {
    let mut by_v: Vec<usize> = (0..m.len()).collect();
    by_v.sort_by(|a, b| m[*b].1.total_cmp(&m[*a].1));
    let mut by_k: Vec<usize> = (0..m.len()).filter(|i| m[*i].2 > 0.0).collect();
    by_k.sort_by(|a, b| m[*b].2.total_cmp(&m[*a].2));
    let mut cands: Vec<usize> = by_v.iter().take(dv).copied().collect();
    let seen: HashSet<usize> = cands.iter().copied().collect();
    cands.extend(by_k.iter().take(dk).filter(|i| !seen.contains(i)));
    cands
}

fn replay(pool: &Pool, fusion: Fusion, depth: usize) -> Vec<&str> {
    let m = &pool.memories;
    let cands = candidates(m, depth);
    let rank_by = |score: &dyn Fn(usize) -> f64| {
        let mut order = cands.clone();
        order.sort_by(|a, b| score(*b).total_cmp(&score(*a)));
        let mut rank = HashMap::new();
        for (r, i) in order.into_iter().enumerate() {
            rank.insert(i, r + 1);
        }
        rank
    };
    let fused: Vec<f64> = match fusion {
        Fusion::Rrf { k, keyword_weight } => {
            let (rv, rk) = (rank_by(&|i| m[i].1), rank_by(&|i| m[i].2));
            cands
                .iter()
                .map(|i| {
                    let by_keyword =
                        if m[*i].2 > 0.0 { keyword_weight / (k + rk[i] as f64) } else { 0.0 };
                    1.0 / (k + rv[i] as f64) + by_keyword
                })
                .collect()
        }
        Fusion::Weighted { w } => {
            let best = cands.iter().map(|i| m[*i].2).fold(0.0, f64::max);
            cands
                .iter()
                .map(|i| w * m[*i].1 + (1.0 - w) * if best > 0.0 { m[*i].2 / best } else { 0.0 })
                .collect()
        }
        Fusion::MinMax { w } => {
            let range = |f: &dyn Fn(usize) -> f64| {
                let lo = cands.iter().map(|i| f(*i)).fold(f64::INFINITY, f64::min);
                let hi = cands.iter().map(|i| f(*i)).fold(f64::NEG_INFINITY, f64::max);
                (lo, if hi > lo { hi - lo } else { 1.0 })
            };
            let ((lv, dv), (lk, dk)) = (range(&|i| m[i].1), range(&|i| m[i].2));
            cands
                .iter()
                .map(|i| w * (m[*i].1 - lv) / dv + (1.0 - w) * (m[*i].2 - lk) / dk)
                .collect()
        }
    };
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_by(|a, b| fused[*b].total_cmp(&fused[*a]));
    order.iter().take(10).map(|o| m[cands[*o]].0.as_str()).collect()
}

fn replay_all(pools: &[Pool], fusion: Fusion, depth: usize) -> Split {
    let mut s = Split::default();
    for p in pools {
        s.add(p.tune, &replay(p, fusion, depth), &p.evidence);
    }
    s
}

/// Replays fusions on the pools, chooses the best hit@10 (then nDCG@10) of the tuning half,
/// and prints the best few with their held-out numbers beside the current fusion's.
fn sweep(pools: &[Pool]) {
    let mut fusions = Vec::new();
    for k in [1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 60.0, 100.0] {
        for keyword_weight in [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0] {
            fusions.push(Fusion::Rrf { k, keyword_weight });
        }
    }
    for w in (0..=20).map(|i| f64::from(i) / 20.0) {
        fusions.push(Fusion::Weighted { w });
        fusions.push(Fusion::MinMax { w });
    }
    // QUALITY_SWEEP=quick: the weighted sums only, at two depths.
    let quick = std::env::var("QUALITY_SWEEP").is_ok_and(|v| v == "quick");
    if quick {
        fusions.retain(|f| !matches!(f, Fusion::Rrf { .. }));
    }
    let depths: &[usize] = if quick { &[20, 50] } else { &[10, 20, 30, 50, 100, 200] };
    let mut results: Vec<(Fusion, usize, Split)> = Vec::new();
    for &depth in depths {
        for f in &fusions {
            results.push((*f, depth, replay_all(pools, *f, depth)));
        }
    }
    let key = |s: &Scores| {
        let v = s.values();
        (v[2], v[6])
    };
    results.sort_by(|a, b| key(&b.2.tune).partial_cmp(&key(&a.2.tune)).unwrap());
    println!("fusion sweep ({} configurations), best on the tuning half first:", results.len());
    println!(
        "{:<44} {:>6} {:>11} {:>12} {:>12} {:>9}",
        "fusion", "depth", "tune hit@10", "held hit@10", "held nDCG10", "all hit@10"
    );
    let current = (Fusion::Rrf { k: 60.0, keyword_weight: 1.0 }, 50);
    let current = (current.0, current.1, replay_all(pools, current.0, current.1));
    // The best few, then the best of each kind, then the fusion before the sweep.
    let family = |f: &Fusion| std::mem::discriminant(f);
    let mut shown: Vec<&(Fusion, usize, Split)> = results.iter().take(8).collect();
    for r in &results {
        if !shown.iter().any(|s| family(&s.0) == family(&r.0)) {
            shown.push(r);
        }
    }
    for (f, depth, s) in shown.into_iter().chain(std::iter::once(&current)) {
        println!(
            "{:<44} {depth:>6} {:>11.3} {:>12.3} {:>12.3} {:>9.3}",
            format!("{f:?}"),
            s.tune.values()[2],
            s.held.values()[2],
            s.held.values()[6],
            s.all.values()[2]
        );
    }
    println!("(last line: the fusion before the sweep, reciprocal rank k = 60 over the best 50)");
}

/// Scores scaled to [0, 1] over the candidates (min-max; 1 when they are all equal), as the
/// engine's fusion scales them.
fn min_max(xs: &[f64]) -> Vec<f64> {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    xs.iter().map(|x| if hi > lo { (x - lo) / (hi - lo) } else { 1.0 }).collect()
}

/// Scores scaled over the candidates to mean 0 and standard deviation 1 (z-score; 0 when they
/// are all equal): the scaling of distribution-based score fusion.
fn z_score(xs: &[f64]) -> Vec<f64> {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    xs.iter().map(|x| if sd > 0.0 { (x - mean) / sd } else { 0.0 }).collect()
}

/// How the rerank sweeps scale each score over the candidates before the weighted sums.
#[derive(Debug, Clone, Copy)]
enum Scale {
    MinMax,
    ZScore,
}

impl Scale {
    fn apply(self, xs: &[f64]) -> Vec<f64> {
        match self {
            Scale::MinMax => min_max(xs),
            Scale::ZScore => z_score(xs),
        }
    }

    /// `RERANK_SCALES` (e.g. "minmax,zscore"; default min-max only).
    fn from_env() -> Vec<Scale> {
        std::env::var("RERANK_SCALES").map_or_else(
            |_| vec![Scale::MinMax],
            |v| {
                v.split(',')
                    .filter_map(|x| match x.trim() {
                        "minmax" => Some(Scale::MinMax),
                        "zscore" => Some(Scale::ZScore),
                        _ => None,
                    })
                    .collect()
            },
        )
    }
}

/// A pool's candidates' cosine, BM25 and token match, scaled.
type Scaled = (Vec<f64>, Vec<f64>, Option<Vec<f64>>);

/// Per pool: candidates (indices into its memories) with their cosine, BM25 and token match
/// (unscaled).
type Prepared = (Vec<usize>, Vec<f64>, Vec<f64>, Option<Vec<f64>>);

/// Each conversation's turns by dialogue id, for the token match's candidate texts.
fn turn_texts(conversations: &[Conversation]) -> Vec<HashMap<&str, &str>> {
    conversations
        .iter()
        .map(|c| c.turns.iter().map(|(d, t)| (d.as_str(), t.as_str())).collect())
        .collect()
}

/// `cands` of pool `p` with their scaled cosine, BM25 and token match.
fn prepare(
    potion: &dyn Embedder,
    texts: &[HashMap<&str, &str>],
    p: &Pool,
    cands: Vec<usize>,
) -> Prepared {
    let m = &p.memories;
    let ctexts: Vec<&str> = cands.iter().map(|i| texts[p.conv][m[*i].0.as_str()]).collect();
    let tm = if std::env::var_os("QUALITY_TM_IDF_ALL").is_some() {
        // QUALITY_TM_IDF_ALL: the token match's idf over every memory of the conversation
        // (what a namespace-wide document frequency of token rows would give), not over
        // the candidates only.
        let all: Vec<&str> = m.iter().map(|x| texts[p.conv][x.0.as_str()]).collect();
        potion
            .token_match(&p.question, &all)
            .unwrap()
            .map(|scores| cands.iter().map(|i| scores[*i]).collect())
    } else {
        potion.token_match(&p.question, &ctexts).unwrap()
    };
    let v: Vec<f64> = cands.iter().map(|i| m[*i].1).collect();
    let k: Vec<f64> = cands.iter().map(|i| m[*i].2).collect();
    (cands, v, k, tm)
}

/// Fuses the prepared candidates as the engine fuses three scores, for a grid of
/// `vector_weight` and the cosine's share of the vector side (`no_match_weight` when the model
/// gives no token match), and adds one result per grid point, named `label` and the point.
fn sweep_weights(
    pools: &[Pool],
    prepared: &[Prepared],
    no_match_weight: f64,
    (label, scale): (&str, Scale),
    results: &mut Vec<(String, Split)>,
) {
    let scaled: Vec<Scaled> = prepared
        .iter()
        .map(|(_, v, k, tm)| {
            (scale.apply(v), scale.apply(k), tm.as_deref().map(|t| scale.apply(t)))
        })
        .collect();
    for vw in [0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0] {
        for share in [0.2, 0.3, 0.35, 0.4, 0.5] {
            let mut s = Split::default();
            for ((p, (c, ..)), (v, k, tm)) in pools.iter().zip(prepared).zip(&scaled) {
                let (w, side): (f64, Vec<f64>) = match tm {
                    Some(t) => {
                        (vw, v.iter().zip(t).map(|(v, t)| share * v + (1.0 - share) * t).collect())
                    }
                    None => (no_match_weight, v.clone()),
                };
                let fused: Vec<f64> =
                    side.iter().zip(k).map(|(s, k)| w * s + (1.0 - w) * k).collect();
                let mut order: Vec<usize> = (0..c.len()).collect();
                order.sort_by(|a, b| fused[*b].total_cmp(&fused[*a]));
                let ranked: Vec<&str> =
                    order.iter().take(10).map(|o| p.memories[c[*o]].0.as_str()).collect();
                s.add(p.tune, &ranked, &p.evidence);
            }
            results.push((format!("{label} vector_weight {vw} cosine share {share}"), s));
        }
    }
}

/// Sorts sweep results best on the tuning half first (ties by its recall@10) and prints the
/// first `top` with their held-out and overall hit@10.
fn print_best(title: &str, results: &mut [(String, Split)], top: usize) {
    let key = |s: &Scores| (s.values()[2], s.values()[5]);
    results.sort_by(|a, b| key(&b.1.tune).partial_cmp(&key(&a.1.tune)).unwrap());
    println!("{title} ({}), best on the tuning half first:", results.len());
    println!(
        "{:<70} {:>11} {:>14} {:>12} {:>9}",
        "fusion", "tune hit@10", "tune recall@10", "held hit@10", "all hit@10"
    );
    for (name, s) in results.iter().take(top) {
        println!(
            "{name:<70} {:>11.3} {:>14.3} {:>12.3} {:>9.3}",
            s.tune.values()[2],
            s.tune.values()[5],
            s.held.values()[2],
            s.all.values()[2]
        );
    }
}

/// `QUALITY_SWEEP=match`: replays the engine's hybrid fusion with the static model's token
/// match ([`Embedder::token_match`], the engine's own) over the best 50 or 100 of each ranking,
/// for a grid of `vector_weight` and the cosine's share of the vector side, and prints the
/// best on the tuning half first (ties by its recall@10) with their held-out and overall
/// hit@10.
fn sweep_match(potion: &dyn Embedder, conversations: &[Conversation], pools: &[Pool]) {
    let texts = turn_texts(conversations);
    let mut results: Vec<(String, Split)> = Vec::new();
    for depth in [50, 100] {
        let prepared: Vec<Prepared> = pools
            .iter()
            .map(|p| prepare(potion, &texts, p, candidates(&p.memories, depth)))
            .collect();
        let label = format!("depth {depth}");
        sweep_weights(pools, &prepared, 0.6, (&label, Scale::MinMax), &mut results);
    }
    print_best("token-match fusion sweep", &mut results, 12);
}

/// `QUALITY_SWEEP=rerank`: replays a two-stage fusion with the static model's token match —
/// the two-score fusion (min-max, weight `w1` on the cosine) over the best `depth` of each
/// ranking, then the token match over its best `n` only, fused as the engine fuses three scores
/// (each min-max scaled over those `n`) — for a grid of `depth`, `w1`, `n`, `vector_weight` and
/// the cosine's share, and prints the best on the tuning half first (ties by its recall@10).
fn sweep_rerank(potion: &dyn Embedder, conversations: &[Conversation], pools: &[Pool]) {
    let texts = turn_texts(conversations);
    let mut results: Vec<(String, Split)> = Vec::new();
    let (depths, ns) = rerank_grid();
    for (scale, (dv, dk)) in
        Scale::from_env().into_iter().flat_map(|s| depths.iter().map(move |d| (s, *d)))
    {
        for w1 in [0.3, 0.4, 0.5, 0.6, 0.7] {
            for &n in &ns {
                let prepared: Vec<Prepared> = pools
                    .iter()
                    .map(|p| {
                        let m = &p.memories;
                        let cands = candidates_of(m, dv, dk);
                        let v: Vec<f64> = cands.iter().map(|i| m[*i].1).collect();
                        let k: Vec<f64> = cands.iter().map(|i| m[*i].2).collect();
                        let (sv, sk) = (scale.apply(&v), scale.apply(&k));
                        let fused: Vec<f64> =
                            sv.iter().zip(&sk).map(|(v, k)| w1 * v + (1.0 - w1) * k).collect();
                        let mut order: Vec<usize> = (0..cands.len()).collect();
                        order.sort_by(|a, b| fused[*b].total_cmp(&fused[*a]));
                        order.truncate(n);
                        prepare(potion, &texts, p, order.iter().map(|o| cands[*o]).collect())
                    })
                    .collect();
                let label = format!("{scale:?} depth {dv}:{dk} w1 {w1} n {n}");
                sweep_weights(pools, &prepared, w1, (&label, scale), &mut results);
            }
        }
    }
    print_rerank(results);
}

/// [`sweep_rerank`]'s vector:keyword depths (`RERANK_DEPTHS`, e.g. "20:50,50:50") and rerank
/// counts (`RERANK_NS`, e.g. "50,75").
fn rerank_grid() -> (Vec<(usize, usize)>, Vec<usize>) {
    let depths = std::env::var("RERANK_DEPTHS").ok().map_or_else(
        || vec![(30, 30), (50, 50), (100, 100)],
        |v| {
            v.split(',')
                .filter_map(|x| {
                    let (a, b) = x.split_once(':')?;
                    Some((a.parse().ok()?, b.parse().ok()?))
                })
                .collect()
        },
    );
    let ns = std::env::var("RERANK_NS").ok().map_or_else(
        || vec![20, 30, 40, 50, 75],
        |v| v.split(',').filter_map(|x| x.parse().ok()).collect(),
    );
    (depths, ns)
}

/// Prints [`sweep_rerank`]'s results, best on the tuning half first, then the best of each
/// depth and rerank count.
fn print_rerank(mut results: Vec<(String, Split)>) {
    print_best("two-stage token-match sweep", &mut results, 40);
    // The best of each depth and n, for the latency trade-off.
    let mut best: Vec<(String, &Split)> = Vec::new();
    for (name, s) in &results {
        let group: String = name.split(" vector_weight").next().unwrap_or_default().to_owned();
        let group = group.split(" w1").next().unwrap_or_default().to_owned()
            + &group.split(" n ").nth(1).map(|n| format!(" n {n}")).unwrap_or_default();
        if !best.iter().any(|(g, _)| *g == group) {
            best.push((group, s));
            println!(
                "best of {:<40} {name:<50} {:>6.3} {:>6.3} {:>6.3}",
                best.last().unwrap().0,
                s.tune.values()[2],
                s.held.values()[2],
                s.all.values()[2]
            );
        }
    }
}

/// How [`experiments`] scales the two scores before the weighted sum: min-max over the
/// candidates (the engine's), z-score (mean and standard deviation over the candidates; the
/// ranking of distribution-based score fusion), or reciprocal rank with constant k.
#[derive(Debug, Clone, Copy)]
enum Norm {
    MinMax,
    ZScore,
    Rrf(f64),
}

/// Indices of `m` best first by fusing vector scores `vs` and keyword scores `ks`.
fn fuse_idx(vs: &[f64], ks: &[f64], norm: Norm, w: f64, depth: usize, n: usize) -> Vec<usize> {
    fuse_sel(vs, vs, ks, norm, w, depth, n)
}

/// As [`fuse_idx`], candidates chosen by `sel` (vector side) and scored by `vs`.
#[allow(clippy::too_many_arguments)]
fn fuse_sel(
    sel: &[f64],
    vs: &[f64],
    ks: &[f64],
    norm: Norm,
    w: f64,
    depth: usize,
    n: usize,
) -> Vec<usize> {
    let mut by_v: Vec<usize> = (0..vs.len()).collect();
    by_v.sort_by(|a, b| sel[*b].total_cmp(&sel[*a]));
    let mut by_k: Vec<usize> = (0..ks.len()).filter(|i| ks[*i] > 0.0).collect();
    by_k.sort_by(|a, b| ks[*b].total_cmp(&ks[*a]));
    let mut cands: Vec<usize> = by_v.iter().take(depth).copied().collect();
    let seen: HashSet<usize> = cands.iter().copied().collect();
    cands.extend(by_k.iter().take(depth).filter(|i| !seen.contains(i)));
    let fused: Vec<f64> = match norm {
        Norm::MinMax | Norm::ZScore => {
            let scale = |f: &[f64]| -> (f64, f64) {
                let xs: Vec<f64> = cands.iter().map(|i| f[*i]).collect();
                if matches!(norm, Norm::MinMax) {
                    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    (lo, if hi > lo { hi - lo } else { 1.0 })
                } else {
                    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
                    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
                    (mean, if var > 0.0 { var.sqrt() } else { 1.0 })
                }
            };
            let ((lv, dv), (lk, dk)) = (scale(vs), scale(ks));
            cands.iter().map(|i| w * (vs[*i] - lv) / dv + (1.0 - w) * (ks[*i] - lk) / dk).collect()
        }
        Norm::Rrf(k) => {
            let rank = |order: &[usize]| -> HashMap<usize, usize> {
                order.iter().enumerate().map(|(r, i)| (*i, r + 1)).collect()
            };
            let (rv, rk) = (rank(&by_v), rank(&by_k));
            cands
                .iter()
                .map(|i| {
                    w / (k + rv[i] as f64) + rk.get(i).map_or(0.0, |r| (1.0 - w) / (k + *r as f64))
                })
                .collect()
        }
    };
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_by(|a, b| fused[*b].total_cmp(&fused[*a]));
    order.iter().take(n).map(|o| cands[*o]).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

/// Pseudo-relevance feedback on the vector side in [`experiments`].
#[derive(Debug, Clone, Copy)]
enum Prf {
    None,
    /// Fused top m's centroid, weight beta.
    Fused(usize, f64),
    /// Keyword top m's centroid.
    Keyword(usize, f64),
    /// As `Fused`, rescoring the first fusion's candidates only.
    Rerank(usize, f64),
}

/// The variants [`experiments`] replays: scaling, weight, depth, feedback, stop words.
fn variants() -> Vec<(Norm, f64, usize, Prf, u8)> {
    let mut variants: Vec<(Norm, f64, usize, Prf, u8)> = Vec::new();
    for stop in [0u8, 1, 2] {
        for (norm, ws) in [
            (Norm::MinMax, vec![0.4, 0.5, 0.55, 0.6, 0.65, 0.7]),
            (Norm::ZScore, vec![0.3, 0.4, 0.5, 0.6, 0.7]),
        ] {
            for w in ws {
                for depth in [30, 50, 100] {
                    variants.push((norm, w, depth, Prf::None, stop));
                }
            }
        }
        for k in [10.0, 60.0] {
            for w in [0.4, 0.5, 0.6] {
                variants.push((Norm::Rrf(k), w, 50, Prf::None, stop));
            }
        }
        for m in [3, 5, 10] {
            for beta in [0.5, 1.0, 2.0] {
                for w in [0.5, 0.6, 0.7] {
                    variants.push((Norm::MinMax, w, 50, Prf::Fused(m, beta), stop));
                    variants.push((Norm::ZScore, w, 50, Prf::Fused(m, beta), stop));
                    variants.push((Norm::MinMax, w, 50, Prf::Keyword(m, beta), stop));
                    variants.push((Norm::MinMax, w, 50, Prf::Rerank(m, beta), stop));
                    variants.push((Norm::ZScore, w, 50, Prf::Rerank(m, beta), stop));
                }
            }
        }
    }
    variants
}

/// `QUALITY_SWEEP=experiments`: replays other ways to rank the default model's pools and prints
/// the best on the tuning half with their held-out hit@10 and nDCG@10 — z-score scaling,
/// candidate depth 30/50/100, reciprocal rank; pseudo-relevance feedback on the vector side
/// (the query moved towards the centroid of the fused top m, or of BM25's top m, by beta, then
/// the whole ranking or only the first fusion's candidates scored again); and stop words left
/// out before embedding (`stop` 1: of the question; 2: of the question and the memories).
fn experiments(potion: &dyn Embedder, conversations: &[Conversation], pools: &[Pool]) {
    // Every memory's embedding, and with the stop words left out (memories and questions).
    let stop = stop_list();
    let mut embs: Vec<HashMap<String, Vec<f32>>> = Vec::new();
    let mut m_ns: Vec<HashMap<String, Vec<f32>>> = Vec::new();
    let mut q_ns = Vec::new();
    for c in conversations {
        let ids = || c.turns.iter().map(|t| t.0.clone());
        let texts: Vec<&str> = c.turns.iter().map(|t| t.1.as_str()).collect();
        embs.push(ids().zip(potion.embed(&texts).unwrap()).collect());
        let filtered: Vec<String> = texts.iter().map(|t| without_stop_words(t, &stop)).collect();
        let filtered: Vec<&str> = filtered.iter().map(String::as_str).collect();
        m_ns.push(ids().zip(potion.embed(&filtered).unwrap()).collect());
        for (q, _) in &c.questions {
            q_ns.push(potion.embed(&[without_stop_words(q, &stop).as_str()]).unwrap().remove(0));
        }
    }

    let variants = variants();
    let mut results: Vec<(String, Split)> = Vec::new();
    for (norm, w, depth, prf, stop) in &variants {
        let mut s = Split::default();
        for (pi, p) in pools.iter().enumerate() {
            let emb_of = |id: &str| -> &Vec<f32> {
                if *stop == 2 {
                    &m_ns[p.conv][id]
                } else {
                    &embs[p.conv][id]
                }
            };
            let q = if *stop >= 1 { &q_ns[pi] } else { &p.query };
            let mut vs: Vec<f64> = p.memories.iter().map(|m| dot(q, emb_of(&m.0))).collect();
            let ks: Vec<f64> = p.memories.iter().map(|m| m.2).collect();
            let feedback = match prf {
                Prf::None => None,
                Prf::Fused(m, beta) | Prf::Rerank(m, beta) => {
                    Some((fuse_idx(&vs, &ks, *norm, *w, *depth, *m), *beta))
                }
                Prf::Keyword(m, beta) => {
                    let mut by_k: Vec<usize> = (0..ks.len()).filter(|i| ks[*i] > 0.0).collect();
                    by_k.sort_by(|a, b| ks[*b].total_cmp(&ks[*a]));
                    by_k.truncate(*m);
                    Some((by_k, *beta))
                }
            };
            let sel = vs.clone();
            if let Some((top, beta)) = feedback {
                if !top.is_empty() {
                    let mut c = vec![0f32; q.len()];
                    for i in &top {
                        for (a, b) in c.iter_mut().zip(emb_of(&p.memories[*i].0)) {
                            *a += b / top.len() as f32;
                        }
                    }
                    let q2: Vec<f32> = q.iter().zip(&c).map(|(a, b)| a + beta as f32 * b).collect();
                    let n = dot(&q2, &q2).sqrt().max(1e-9);
                    vs = p.memories.iter().map(|m| dot(&q2, emb_of(&m.0)) / n).collect();
                }
            }
            let top = if matches!(prf, Prf::Rerank(..)) {
                fuse_sel(&sel, &vs, &ks, *norm, *w, *depth, 10)
            } else {
                fuse_idx(&vs, &ks, *norm, *w, *depth, 10)
            };
            let ranked: Vec<&str> = top.iter().map(|i| p.memories[*i].0.as_str()).collect();
            s.add(p.tune, &ranked, &p.evidence);
        }
        results.push((format!("{norm:?} w{w} d{depth} {prf:?} stop{stop}"), s));
    }
    results.sort_by(|a, b| b.1.tune.values()[2].total_cmp(&a.1.tune.values()[2]));
    println!("experiments ({}), best tuning hit@10 first:", results.len());
    for (name, s) in results.iter().take(40) {
        println!(
            "{name:<55} tune {:.3} held {:.3} all {:.3} heldnDCG {:.3}",
            s.tune.values()[2],
            s.held.values()[2],
            s.all.values()[2],
            s.held.values()[6]
        );
    }
    for (name, s) in &results {
        if name.starts_with("MinMax w0.6 d50 None") || name.starts_with("ZScore w0.5 d50 None") {
            println!(
                "ref {name:<51} tune {:.3} held {:.3} all {:.3}",
                s.tune.values()[2],
                s.held.values()[2],
                s.all.values()[2]
            );
        }
    }
}

/// Question words and function words dropped before embedding (experiment): the keyword
/// index's stop list, read from its source.
fn without_stop_words(text: &str, stop: &HashSet<String>) -> String {
    let kept: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty() && !stop.contains(&w.to_lowercase()))
        .collect();
    if kept.is_empty() {
        text.to_owned()
    } else {
        kept.join(" ")
    }
}

fn stop_list() -> HashSet<String> {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/text.rs")).unwrap();
    let start = src.find("const STOP_WORDS").unwrap();
    let body = &src[start..];
    let body = &body[body.find("= &[").unwrap() + 4..body.find("];").unwrap()];
    body.split(',')
        .map(|w| w.trim().trim_matches('"').to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

/// How [`sweep_analyzers`] turns text into BM25 terms: Unicode words, case-folded, the
/// index's stop words left out, then stemmed by Snowball English (the index's), by the
/// S-stemmer (plurals only; Harman 1991), or not at all.
#[derive(Debug, Clone, Copy)]
enum Analyzer {
    Snowball,
    Plural,
    Unstemmed,
}

fn analyze(text: &str, a: Analyzer, stop: &HashSet<String>) -> Vec<String> {
    use unicode_segmentation::UnicodeSegmentation;
    thread_local! {
        static STEMMER: rust_stemmers::Stemmer =
            rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
    }
    text.unicode_words()
        .filter_map(|w| {
            let folded = w.to_lowercase();
            if stop.contains(&folded) {
                return None;
            }
            let mut term = match a {
                Analyzer::Snowball => STEMMER.with(|s| s.stem(&folded).into_owned()),
                Analyzer::Plural => s_stem(&folded),
                Analyzer::Unstemmed => folded,
            };
            let mut cut = term.len().min(64);
            while !term.is_char_boundary(cut) {
                cut -= 1;
            }
            term.truncate(cut);
            Some(term)
        })
        .collect()
}

/// Harman's S-stemmer: "-ies" → "-y", "-es" → "-e", "-s" → "" (with its exceptions).
fn s_stem(w: &str) -> String {
    let not = |ends: &[&str]| !ends.iter().any(|e| w.ends_with(e));
    if let Some(base) = w.strip_suffix("ies").filter(|_| not(&["eies", "aies"])) {
        return format!("{base}y");
    }
    if let Some(base) = w.strip_suffix("es").filter(|_| not(&["aes", "ees", "oes"])) {
        return format!("{base}e");
    }
    if let Some(base) = w.strip_suffix('s').filter(|_| not(&["us", "ss"])) {
        return base.to_owned();
    }
    w.to_owned()
}

/// One conversation's BM25 statistics under one analyzer: each turn's term counts and
/// length (by dialogue id), and each term's document frequency.
struct Bm25Index {
    docs: HashMap<String, (HashMap<String, u32>, usize)>,
    df: HashMap<String, usize>,
    avg: f64,
}

impl Bm25Index {
    fn of(c: &Conversation, a: Analyzer, stop: &HashSet<String>) -> Bm25Index {
        let mut docs = HashMap::new();
        let mut df: HashMap<String, usize> = HashMap::new();
        let mut total = 0;
        for (id, text) in &c.turns {
            let terms = analyze(text, a, stop);
            let mut counts: HashMap<String, u32> = HashMap::new();
            for t in &terms {
                *counts.entry(t.clone()).or_default() += 1;
            }
            for t in counts.keys() {
                *df.entry(t.clone()).or_default() += 1;
            }
            total += terms.len();
            docs.insert(id.clone(), (counts, terms.len()));
        }
        let avg = (total as f64 / c.turns.len().max(1) as f64).max(1.0);
        Bm25Index { docs, df, avg }
    }

    /// BM25 (the index's k1 and b) of `query` in the turn `id`; `delta` > 0 is BM25+ (each
    /// matched term adds at least `delta` × its weight, however long the turn); each query
    /// term's weight is its idf to the power 1 + `gamma` (0: BM25's own).
    fn score(&self, query: &HashMap<String, u32>, id: &str, delta: f64, gamma: f64) -> f64 {
        const K1: f64 = 0.9;
        const B: f64 = 0.4;
        let n = self.docs.len() as f64;
        let Some((counts, len)) = self.docs.get(id) else { return 0.0 };
        query
            .iter()
            .filter_map(|(term, qtf)| {
                let tf = f64::from(*counts.get(term)?);
                let df = self.df[term] as f64;
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                let norm = tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * *len as f64 / self.avg));
                Some(idf.powf(1.0 + gamma) * f64::from(*qtf) * (norm + delta))
            })
            .sum()
    }
}

/// The engine's two-stage hybrid fusion of a pool's memories with cosine `v` and BM25 `k`
/// (in the pool's order): the best 50 of each ranking, min-max fused half and half, the best
/// 75 of those reranked with the token match (cosine share 0.4 of the embedder's side,
/// `vector_weight` 0.85). The top 10, as dialogue ids.
fn engine_fusion<'p>(
    potion: &dyn Embedder,
    texts: &[HashMap<&str, &str>],
    pool: &'p Pool,
    cosine: &[f64],
    bm25: &[f64],
    idf_all: bool,
) -> Vec<&'p str> {
    let scored: Vec<(String, f64, f64)> = pool
        .memories
        .iter()
        .zip(cosine.iter().zip(bm25))
        .map(|(x, (c, b))| (x.0.clone(), *c, *b))
        .collect();
    let cands = candidates_of(&scored, 50, 50);
    let scaled =
        |of: &[f64], among: &[usize]| min_max(&among.iter().map(|i| of[*i]).collect::<Vec<_>>());
    let (sv, sk) = (scaled(cosine, &cands), scaled(bm25, &cands));
    let first: Vec<f64> = sv.iter().zip(&sk).map(|(v, k)| 0.5 * v + 0.5 * k).collect();
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_by(|a, b| first[*b].total_cmp(&first[*a]));
    order.truncate(75);
    let kept: Vec<usize> = order.iter().map(|o| cands[*o]).collect();
    let ctexts: Vec<&str> = kept.iter().map(|i| texts[pool.conv][scored[*i].0.as_str()]).collect();
    let matched = if idf_all {
        // The token match's idf over every turn of the conversation, not the candidates.
        let all: Vec<&str> = scored.iter().map(|x| texts[pool.conv][x.0.as_str()]).collect();
        let over_all = potion.token_match(&pool.question, &all).unwrap();
        over_all.map(|s| kept.iter().map(|i| s[*i]).collect::<Vec<f64>>())
    } else {
        potion.token_match(&pool.question, &ctexts).unwrap()
    };
    let (sv, sk) = (scaled(cosine, &kept), scaled(bm25, &kept));
    let side: Vec<f64> = match matched {
        Some(t) => sv.iter().zip(min_max(&t)).map(|(v, t)| 0.4 * v + 0.6 * t).collect(),
        None => sv,
    };
    let weight = 0.85;
    let fused: Vec<f64> =
        side.iter().zip(&sk).map(|(s, k)| weight * s + (1.0 - weight) * k).collect();
    let mut order: Vec<usize> = (0..kept.len()).collect();
    order.sort_by(|a, b| fused[*b].total_cmp(&fused[*a]));
    order.iter().take(10).map(|o| pool.memories[kept[*o]].0.as_str()).collect()
}

/// `QUALITY_SWEEP=analyzers`: BM25 computed here under other analyzers (stemming: Snowball
/// English, the index's; plurals only; none), as BM25+ (delta 0.5, 1) and with query terms
/// weighted by a power of their idf (`idf^x`), then keyword-only and the engine's hybrid
/// fusion ([`engine_fusion`]) replayed with it — and once with the token match's idf over
/// the whole conversation (`tm-idf-all`). Prints, per variant,
/// keyword-only and hybrid hit@10 on the tuning half, the held-out half and all questions,
/// and the held-out margin of hybrid over the better single mode. The first line (Snowball,
/// delta 0) is the engine's own BM25, so its hybrid numbers are the engine's.
fn sweep_analyzers(potion: &dyn Embedder, conversations: &[Conversation], pools: &[Pool]) {
    let texts = turn_texts(conversations);
    let stop = stop_list();
    let mut vector = Split::default();
    for p in pools {
        let mut order: Vec<usize> = (0..p.memories.len()).collect();
        order.sort_by(|a, b| p.memories[*b].1.total_cmp(&p.memories[*a].1));
        let ranked: Vec<&str> = order.iter().take(10).map(|i| p.memories[*i].0.as_str()).collect();
        vector.add(p.tune, &ranked, &p.evidence);
    }
    println!(
        "analyzer sweep; vector only hit@10: tune {:.3} held {:.3} all {:.3}",
        vector.tune.values()[2],
        vector.held.values()[2],
        vector.all.values()[2]
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>12} {:>10}",
        "variant",
        "kw tune",
        "kw held",
        "kw all",
        "hyb tune",
        "hyb held",
        "hyb all",
        "held margin",
        "max Δbm25"
    );
    let mut variants: Vec<(Analyzer, f64, f64, bool)> = Vec::new();
    for a in [Analyzer::Snowball, Analyzer::Plural, Analyzer::Unstemmed] {
        for delta in [0.0, 0.5, 1.0] {
            variants.push((a, delta, 0.0, false));
        }
    }
    for gamma in [-0.5, 0.5, 1.0] {
        variants.push((Analyzer::Snowball, 0.0, gamma, false));
    }
    variants.push((Analyzer::Snowball, 0.0, 0.0, true));
    let mut indexes: Vec<(String, Vec<Bm25Index>)> = Vec::new();
    for (a, delta, gamma, idf_all) in variants {
        let name = format!("{a:?}");
        if !indexes.iter().any(|(n, _)| *n == name) {
            let built = conversations.iter().map(|c| Bm25Index::of(c, a, &stop)).collect();
            indexes.push((name.clone(), built));
        }
        let built = &indexes.iter().find(|(n, _)| *n == name).expect("built").1;
        {
            let (mut keyword, mut hybrid) = (Split::default(), Split::default());
            let mut worst: f64 = 0.0;
            for p in pools {
                let mut q: HashMap<String, u32> = HashMap::new();
                for t in analyze(&p.question, a, &stop) {
                    *q.entry(t).or_default() += 1;
                }
                let index = &built[p.conv];
                let k: Vec<f64> =
                    p.memories.iter().map(|m| index.score(&q, &m.0, delta, gamma)).collect();
                for (m, k) in p.memories.iter().zip(&k) {
                    worst = worst.max((m.2 - k).abs() / m.2.max(1.0));
                }
                if delta == 0.0 && gamma == 0.0 && matches!(a, Analyzer::Snowball) {
                    assert!(worst < 1e-3, "the index's BM25 not reproduced: {worst}");
                }
                let v: Vec<f64> = p.memories.iter().map(|m| m.1).collect();
                let mut order: Vec<usize> = (0..k.len()).filter(|i| k[*i] > 0.0).collect();
                order.sort_by(|x, y| k[*y].total_cmp(&k[*x]));
                let ranked: Vec<&str> =
                    order.iter().take(10).map(|i| p.memories[*i].0.as_str()).collect();
                keyword.add(p.tune, &ranked, &p.evidence);
                let fused = engine_fusion(potion, &texts, p, &v, &k, idf_all);
                hybrid.add(p.tune, &fused, &p.evidence);
            }
            let held = |s: &Split| s.held.values()[2];
            let margin = held(&hybrid) / held(&keyword).max(held(&vector)) - 1.0;
            println!(
                "{:<34} {:>9.3} {:>9.3} {:>9.3} {:>10.3} {:>10.3} {:>10.3} {:>11.1}% {:>10.4}",
                format!(
                    "{a:?} delta {delta}{}{}",
                    if gamma == 0.0 { String::new() } else { format!(" idf^{}", 1.0 + gamma) },
                    if idf_all { " tm-idf-all" } else { "" }
                ),
                keyword.tune.values()[2],
                held(&keyword),
                keyword.all.values()[2],
                hybrid.tune.values()[2],
                held(&hybrid),
                hybrid.all.values()[2],
                margin * 100.0,
                worst
            );
        }
    }
}

fn main() {
    let Some(data) = std::env::var_os("DATA") else {
        eprintln!(
            "set DATA to the directory of LoCoMo's conversation files or to a LongMemEval \
             JSON file (make bench-quality DATA=...)"
        );
        return;
    };
    let (bench, conversations) = load(Path::new(&data));
    let turns: usize = conversations.iter().map(|c| c.turns.len()).sum();
    let questions: usize = conversations.iter().map(|c| c.questions.len()).sum();
    let tune: Vec<&str> =
        conversations.iter().filter(|c| c.tune).map(|c| c.name.as_str()).collect();
    let longmemeval = bench == "LongMemEval";
    if longmemeval {
        println!(
            "LongMemEval: {questions} questions with evidence sessions (abstention left out), \
             each with its own haystack: {turns} turns in all; nothing was tuned on it, so \
             the held-out columns are every question"
        );
    } else {
        println!(
            "LoCoMo: {} conversations, {turns} turns, {questions} questions with evidence; \
             tuning half: conversations {}",
            conversations.len(),
            tune.join(", ")
        );
    }
    let modes = [
        ("vector", RecallMode::Vector),
        ("keyword", RecallMode::Keyword),
        ("hybrid", RecallMode::Hybrid),
    ];
    let (mut rows, _) =
        run("hashing", Arc::new(HashEmbedder::new(384)), &conversations, &modes, false);
    let model_dir = std::env::var_os("MEMSILO_MODEL_DIR").map(PathBuf::from);
    // The sweeps replay fusions to choose parameters: on LoCoMo's tuning half only.
    let sweep_kind = std::env::var("QUALITY_SWEEP").ok();
    if longmemeval && sweep_kind.is_some() {
        eprintln!("QUALITY_SWEEP is for LoCoMo (parameters are not chosen on LongMemEval)");
    }
    let sweep_kind = sweep_kind.filter(|_| !longmemeval);
    let sweeping = sweep_kind.is_some();
    let two = [modes[0], modes[2]];
    match model_dir.map(|d| memsilo::load_model(&d.join("potion-base-8M"), "potion-base-8M")) {
        Some(Ok(potion)) => {
            let (more, pools) =
                run("potion-base-8M", potion.clone(), &conversations, &two, sweeping);
            rows.extend(more);
            match sweep_kind.as_deref() {
                Some("experiments") => experiments(potion.as_ref(), &conversations, &pools),
                Some("match") => sweep_match(potion.as_ref(), &conversations, &pools),
                Some("rerank") => sweep_rerank(potion.as_ref(), &conversations, &pools),
                Some("analyzers") => sweep_analyzers(potion.as_ref(), &conversations, &pools),
                Some(_) => sweep(&pools),
                None => {}
            }
        }
        Some(Err(e)) => eprintln!("static model not loaded: {e}"),
        None => eprintln!("MEMSILO_MODEL_DIR not set: the static model is left out (make models)"),
    }
    let minilm_dir = std::env::var_os("MEMSILO_MINILM_DIR").map(PathBuf::from);
    match minilm_dir.filter(|_| !longmemeval || std::env::var_os("QUALITY_MINILM").is_some()) {
        Some(d) => match memsilo::load_model(&d, "all-MiniLM-L6-v2") {
            Ok(minilm) => {
                rows.extend(run("all-MiniLM-L6-v2", minilm, &conversations, &two, false).0);
            }
            Err(e) => {
                eprintln!("MiniLM not loaded (make bench-quality builds --features minilm): {e}");
            }
        },
        None if longmemeval => eprintln!(
            "MiniLM is left out on LongMemEval (about 50 sessions of turns per question: hours \
             at MiniLM's speed here): QUALITY_MINILM=1 runs it"
        ),
        None => eprintln!("MEMSILO_MINILM_DIR not set: MiniLM is left out"),
    }
    write_table(&rows);
    let row = |name: &str| rows.iter().find(|(n, _)| n == name).map(|(_, s)| s);
    if let (Some(h), Some(k), Some(v)) =
        (row("hybrid (potion-base-8M)"), row("keyword (hashing)"), row("vector (potion-base-8M)"))
    {
        for (label, h, k, v) in
            [("all", &h.all, &k.all, &v.all), ("held-out", &h.held, &k.held, &v.held)]
        {
            let (lo, mid, hi) = margin_interval(h, k, v);
            println!(
                "hybrid (potion-base-8M) over the better single mode, {label} ({} questions): \
                 {mid:+.1}% (95% bootstrap interval {lo:+.1}% .. {hi:+.1}%)",
                h.questions
            );
        }
    }
}

/// The margin of hybrid's hit@10 over the better of keyword-only and vector-only (in %), and
/// its 95% interval by a paired bootstrap over the questions (2,000 resamples of the same
/// questions for all three): how far the margin measured on these questions could move on
/// others like them.
fn margin_interval(hybrid: &Scores, keyword: &Scores, vector: &Scores) -> (f64, f64, f64) {
    let n = hybrid.hits10.len();
    let margin = |idx: &mut dyn Iterator<Item = usize>| {
        let (mut h, mut k, mut v) = (0u32, 0u32, 0u32);
        for i in idx {
            h += u32::from(hybrid.hits10[i]);
            k += u32::from(keyword.hits10[i]);
            v += u32::from(vector.hits10[i]);
        }
        (f64::from(h) / f64::from(k.max(v).max(1)) - 1.0) * 100.0
    };
    let mid = margin(&mut (0..n));
    // A fixed xorshift, so every run draws the same resamples.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut draws: Vec<f64> = (0..2000)
        .map(|_| margin(&mut (0..n).map(|_| (next() % n.max(1) as u64) as usize)))
        .collect();
    draws.sort_by(f64::total_cmp);
    (draws[50], mid, draws[1949])
}

/// Prints the table of `rows` and writes it as CSV to `QUALITY_CSV` (for the chart).
fn write_table(rows: &[(String, Split)]) {
    let mut csv = String::from(
        "setup,hit@1,hit@5,hit@10,recall@1,recall@5,recall@10,ndcg@10,held-out hit@10,held-out ndcg@10\n",
    );
    println!(
        "{:<30} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>8} {:>12} {:>12}",
        "setup",
        "hit@1",
        "hit@5",
        "hit@10",
        "recall@1",
        "recall@5",
        "recall@10",
        "nDCG@10",
        "held hit@10",
        "held nDCG10"
    );
    for (name, s) in rows {
        let name = name.replace("keyword (hashing)", "keyword (BM25)");
        let v = s.all.values();
        let h = s.held.values();
        println!(
            "{name:<30} {:>7.3} {:>7.3} {:>7.3} {:>9.3} {:>9.3} {:>9.3} {:>8.3} {:>12.3} {:>12.3}",
            v[0], v[1], v[2], v[3], v[4], v[5], v[6], h[2], h[6]
        );
        csv.push_str(&name);
        for x in v.iter().chain([h[2], h[6]].iter()) {
            let _ = write!(csv, ",{x:.4}");
        }
        csv.push('\n');
    }
    let out = std::env::var("QUALITY_CSV").unwrap_or_else(|_| "quality.csv".into());
    std::fs::write(&out, csv).unwrap();
    println!("written {out}");
}
