//! Retrieval quality on a public conversational-memory benchmark with evidence labels
//! (issue 17): `LoCoMo` (Maharana et al., ACL 2024, `data/locomo10.zip` of the snap-research/locomo
//! repository: ten long conversations, ~2,000 questions, each naming the dialogue turns that hold
//! its answer). Each conversation's turns are stored in one namespace (one memory per turn,
//! "speaker: text"); each question is recalled, and the evidence turns are looked for in the top
//! k. Prints hit@k (any evidence turn in the top k), recall@k (the share of evidence turns in
//! the top k) and nDCG@10 for: hashing embedder, static default (potion-base-8M), keyword only
//! (BM25), hybrid with each embedder; and writes them as CSV for the chart. Adversarial
//! questions (category 5: the answer is not in the conversation) are left out. Asserts nothing.
//!
//! `make bench-quality DATA=<dir of LoCoMo's conversation files>` (release; needs the data,
//! kept out of git, and `make models`).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use memsilo::{
    Embedder, Engine, HashEmbedder, NamespaceOptions, Options, Recall, RecallMode, StoreMemory,
};
use serde_json::Value;

/// One conversation: its turns (dialogue id, text) and questions (text, evidence ids).
struct Conversation {
    name: String,
    turns: Vec<(String, String)>,
    questions: Vec<(String, Vec<String>)>,
}

fn load(dir: &Path) -> Vec<Conversation> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("DATA={}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
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
            Conversation { name, turns, questions }
        })
        .collect()
}

#[derive(Default, Clone)]
struct Scores {
    questions: usize,
    hit: [f64; 3],
    recall: [f64; 3],
    ndcg10: f64,
}

const KS: [usize; 3] = [1, 5, 10];

fn score(ranked: &[String], evidence: &[String], s: &mut Scores) {
    let wanted: HashSet<&str> = evidence.iter().map(String::as_str).collect();
    s.questions += 1;
    for (i, k) in KS.iter().enumerate() {
        let found = ranked.iter().take(*k).filter(|d| wanted.contains(d.as_str())).count();
        s.hit[i] += f64::from(u8::from(found > 0));
        s.recall[i] += found as f64 / wanted.len() as f64;
    }
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .filter(|(_, d)| wanted.contains(d.as_str()))
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let ideal: f64 = (0..wanted.len().min(10)).map(|i| 1.0 / (i as f64 + 2.0).log2()).sum();
    s.ndcg10 += dcg / ideal;
}

/// Stores every conversation with `embedder`, then scores each mode over every question.
fn run(
    label: &str,
    embedder: Arc<dyn Embedder>,
    conversations: &[Conversation],
    modes: &[(&str, RecallMode)],
) -> Vec<(String, Scores)> {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, embedder, ..Options::default() })
            .unwrap();
    let root = engine.root();
    let mut out: Vec<(String, Scores)> =
        modes.iter().map(|(m, _)| (format!("{m} ({label})"), Scores::default())).collect();
    let started = Instant::now();
    for c in conversations {
        let ns = format!("conv-{}", c.name);
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
                let ranked: Vec<String> = hits.iter().map(|h| by_id[&h.id].clone()).collect();
                score(&ranked, evidence, s);
            }
        }
    }
    eprintln!("{label}: {:.1} s", started.elapsed().as_secs_f64());
    out
}

fn main() {
    let Some(data) = std::env::var_os("DATA") else {
        eprintln!("set DATA to the directory of LoCoMo's conversation files (make bench-quality DATA=...)");
        return;
    };
    let conversations = load(Path::new(&data));
    let turns: usize = conversations.iter().map(|c| c.turns.len()).sum();
    let questions: usize = conversations.iter().map(|c| c.questions.len()).sum();
    println!(
        "LoCoMo: {} conversations, {turns} turns, {questions} questions with evidence",
        conversations.len()
    );
    let mut rows = run(
        "hashing",
        Arc::new(HashEmbedder::new(384)),
        &conversations,
        &[
            ("vector", RecallMode::Vector),
            ("keyword", RecallMode::Keyword),
            ("hybrid", RecallMode::Hybrid),
        ],
    );
    let model_dir = std::env::var_os("MEMSILO_MODEL_DIR").map(PathBuf::from);
    match model_dir.map(|d| memsilo::load_model(&d.join("potion-base-8M"), "potion-base-8M")) {
        Some(Ok(model)) => rows.extend(run(
            "potion-base-8M",
            model,
            &conversations,
            &[("vector", RecallMode::Vector), ("hybrid", RecallMode::Hybrid)],
        )),
        Some(Err(e)) => eprintln!("static model not loaded: {e}"),
        None => eprintln!("MEMSILO_MODEL_DIR not set: the static model is left out (make models)"),
    }
    let mut csv = String::from("setup,hit@1,hit@5,hit@10,recall@1,recall@5,recall@10,ndcg@10\n");
    println!(
        "{:<26} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>8}",
        "setup", "hit@1", "hit@5", "hit@10", "recall@1", "recall@5", "recall@10", "nDCG@10"
    );
    for (name, s) in &rows {
        let n = s.questions as f64;
        let name = name.replace("keyword (hashing)", "keyword (BM25)");
        let v = [
            s.hit[0] / n,
            s.hit[1] / n,
            s.hit[2] / n,
            s.recall[0] / n,
            s.recall[1] / n,
            s.recall[2] / n,
            s.ndcg10 / n,
        ];
        println!(
            "{name:<26} {:>7.3} {:>7.3} {:>7.3} {:>9.3} {:>9.3} {:>9.3} {:>8.3}",
            v[0], v[1], v[2], v[3], v[4], v[5], v[6]
        );
        csv.push_str(&name);
        for x in v {
            let _ = write!(csv, ",{x:.4}");
        }
        csv.push('\n');
    }
    let out = std::env::var("QUALITY_CSV").unwrap_or_else(|_| "quality.csv".into());
    std::fs::write(&out, csv).unwrap();
    println!("written {out}");
}
