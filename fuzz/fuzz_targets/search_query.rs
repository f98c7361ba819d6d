//! Search queries built from user text: `chat::fuzzing::fts_query` (SQLite FTS5) and
//! `chat::fuzzing::text_search_terms` (MongoDB `$text`).
//!
//! Asserts for FTS5: no panic; the query is only quoted strings separated by single spaces, and
//! un-quoting them gives back exactly the user's words (split at whitespace and control
//! characters), so no FTS5 operator or syntax can come from the user; run against an in-memory FTS5
//! table with the store's tokenizer it never errors, and a message whose text is the query itself
//! is found whenever the query has a letter or digit. For `$text`: every term is a quoted run of
//! letters and digits (no `-` negation, no stray quote), at most 16, in the order typed; none when
//! the text has no letter or digit.
#![no_main]

use std::cell::RefCell;

use chat::fuzzing::{fts_query, text_search_terms};
use libfuzzer_sys::fuzz_target;
use rusqlite::Connection;

/// FTS5 strings: `"..."` with `""` for a quote inside, separated by one space.
fn unquote(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    loop {
        assert_eq!(chars.next(), Some('"'), "a term does not open with a quote: {q:?}");
        let mut s = String::new();
        loop {
            match chars.next() {
                Some('"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    s.push('"');
                }
                Some('"') => break,
                Some(c) => s.push(c),
                None => panic!("unterminated term in {q:?}"),
            }
        }
        out.push(s);
        match chars.next() {
            None => return out,
            Some(' ') => {}
            Some(c) => panic!("{c:?} between terms of {q:?}"),
        }
    }
}

thread_local! {
    static DB: RefCell<Connection> = RefCell::new({
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE VIRTUAL TABLE m USING fts5 (content, tokenize = 'unicode61 remove_diacritics 2');",
        )
        .unwrap();
        c
    });
}

fn check_fts(text: &str) {
    let words: Vec<&str> =
        text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()).collect();
    let Some(q) = fts_query(text) else {
        assert!(words.is_empty(), "no query for words {words:?}");
        return;
    };
    assert_eq!(unquote(&q), words, "query {q:?} of {text:?}");
    DB.with(|db| {
        let db = db.borrow();
        db.execute("DELETE FROM m", []).unwrap();
        db.execute("INSERT INTO m (rowid, content) VALUES (1, ?1), (2, 'nothing to see here')", [text]).unwrap();
        let mut stmt = db.prepare_cached("SELECT rowid FROM m WHERE m MATCH ?1 ORDER BY rowid").unwrap();
        let hits: Vec<i64> = stmt
            .query_map([&q], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .unwrap_or_else(|e| panic!("FTS5 refused {q:?} (from {text:?}): {e}"));
        if text.chars().any(|c| c.is_ascii_alphanumeric()) {
            assert!(hits.contains(&1), "{q:?} does not find the message {text:?}: {hits:?}");
        }
    });
}

fn check_mongo(text: &str) {
    let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(16).collect();
    let Some(terms) = text_search_terms(text) else {
        assert!(words.is_empty(), "no terms for {words:?}");
        return;
    };
    let got: Vec<&str> = terms.split(' ').collect();
    assert!(got.len() <= 16);
    for (g, w) in got.iter().zip(&words) {
        let inner = g.strip_prefix('"').and_then(|g| g.strip_suffix('"')).expect("quoted term");
        assert!(!inner.is_empty() && inner.chars().all(char::is_alphanumeric), "term {g:?}");
        assert_eq!(inner, *w);
    }
    assert_eq!(got.len(), words.len());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check_fts(text);
    check_mongo(text);
});
