//! Text to index terms: Unicode words (UAX #29), case-folded, English stop words dropped,
//! Snowball-stemmed (English), at most 64 bytes each.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_segmentation::UnicodeSegmentation;

/// Longest term kept, in bytes (longer words are cut at a character boundary).
const MAX_TERM: usize = 64;

/// Words too common to tell memories apart: English function words, pronouns and question
/// words (a question's "what did she ..." says nothing about which memory answers it), and
/// the pieces contractions split into. Chosen with `make bench-quality` (see
/// benches/README.md).
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "after",
    "again",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "both",
    "but",
    "by",
    "can",
    "could",
    "d",
    "did",
    "do",
    "does",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "ll",
    "m",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "re",
    "s",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "t",
    "than",
    "that",
    "the",
    "their",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "ve",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// Whether a case-folded word is one of the stop words the index leaves out.
pub(crate) fn is_stop_word(folded: &str) -> bool {
    STOP_WORDS.binary_search(&folded).is_ok()
}

/// The index term of one word (`None` for a stop word).
fn term_of(word: &str) -> Option<String> {
    let folded = word.to_lowercase();
    if is_stop_word(&folded) {
        return None;
    }
    let mut term = stemmer().stem(&folded).into_owned();
    if term.len() > MAX_TERM {
        let mut cut = MAX_TERM;
        while !term.is_char_boundary(cut) {
            cut -= 1;
        }
        term.truncate(cut);
    }
    Some(term)
}

/// Words whose term this thread computed recently: stemming is most of the cost of indexing
/// a memory, and texts repeat their words. Emptied when it reaches this many words.
const CACHED_WORDS: usize = 50_000;

thread_local! {
    static TERMS: RefCell<HashMap<Box<str>, Option<Box<str>>>> = RefCell::new(HashMap::new());
}

/// The index terms of `text`, in order (repeats kept).
pub(crate) fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.unicode_words().filter_map(|word| {
        TERMS.with_borrow_mut(|cache| {
            if let Some(term) = cache.get(word) {
                return term.as_deref().map(str::to_owned);
            }
            let term = term_of(word);
            if cache.len() >= CACHED_WORDS {
                cache.clear();
            }
            cache.insert(word.into(), term.as_deref().map(Into::into));
            term
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_folded_stemmed_and_stop_words_dropped() {
        let t: Vec<String> =
            terms("The Engineers are HIRING engineers, naïve Straße 2.4M").collect();
        assert_eq!(t, ["engin", "hire", "engin", "naïv", "straße", "2.4m"]);
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]), "sorted for binary search");
        assert_eq!(terms(&"x".repeat(100)).next().unwrap().len(), MAX_TERM);
        // The second time from the cache, the same.
        let again: Vec<String> =
            terms("The Engineers are HIRING engineers, naïve Straße 2.4M").collect();
        assert_eq!(again, t);
    }
}
