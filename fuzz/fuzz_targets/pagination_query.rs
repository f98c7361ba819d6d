//! Query strings of the paginated routes, through the route's own extractor
//! (`chat::http::extract::Query`): `?before=&after=&around=&limit=` of channel history (and its
//! anchor rule), `?after=&limit=` of member lists, `?q=&limit=` of search.
//!
//! Input: the raw query string (what follows `?`).
//!
//! Asserts: no panic; the extractor accepts iff an independent reading of the pairs does (each known
//! key at most once, ids by `Id::from_str`, `limit` as a `u32`, unknown keys ignored) and yields
//! the same values; an accepted query re-encoded reads back equal; the history anchor is refused
//! iff more than one of before/after/around is given, else names the one given.
#![no_main]

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::extract::FromRequestParts;
use chat::Id;
use chat::fuzzing::{HistoryQuery, Page, SearchQuery};
use chat::http::extract::Query;
use chat::model::HistoryAnchor;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

/// The extractor is async but never waits: poll it once.
fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the query extractor waited"),
    }
}

fn extract<T: DeserializeOwned + Send>(uri: &axum::http::Uri) -> Option<T> {
    let (mut parts, ()) = axum::http::Request::builder().uri(uri.clone()).body(()).unwrap().into_parts();
    now(Query::<T>::from_request_parts(&mut parts, &())).ok().map(|Query(t)| t)
}

/// Known keys with their decoded values; None when a known key repeats.
fn pairs(query: &str, known: &[&str]) -> Option<HashMap<String, String>> {
    let mut map = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if known.contains(&k.as_ref()) && map.insert(k.into_owned(), v.into_owned()).is_some() {
            return None;
        }
    }
    Some(map)
}

/// `Some(None)` absent, `Some(Some(v))` valid, `None` invalid.
fn field<T>(map: &HashMap<String, String>, key: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Option<T>> {
    match map.get(key) {
        None => Some(None),
        Some(v) => parse(v).map(Some),
    }
}

fn id(s: &str) -> Option<Id> {
    s.parse().ok()
}
fn limit(s: &str) -> Option<u32> {
    s.parse().ok()
}

fn encode(fields: &[(&str, Option<String>)]) -> axum::http::Uri {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        if let Some(v) = v {
            ser.append_pair(k, v);
        }
    }
    format!("/x?{}", ser.finish()).parse().expect("an encoded query is a valid URI")
}

fn check_history(uri: &axum::http::Uri, query: &str) {
    let got = extract::<HistoryQuery>(uri);
    let want = pairs(query, &["before", "after", "around", "limit"]).and_then(|m| {
        Some((field(&m, "before", id)?, field(&m, "after", id)?, field(&m, "around", id)?, field(&m, "limit", limit)?))
    });
    assert_eq!(got.as_ref().map(|q| (q.before, q.after, q.around, q.limit)), want, "history ?{query}");
    let Some(q) = got else { return };
    let again = extract::<HistoryQuery>(&encode(&[
        ("before", q.before.map(|v| v.to_string())),
        ("after", q.after.map(|v| v.to_string())),
        ("around", q.around.map(|v| v.to_string())),
        ("limit", q.limit.map(|v| v.to_string())),
    ]))
    .expect("re-encoded history query");
    assert_eq!((again.before, again.after, again.around, again.limit), (q.before, q.after, q.around, q.limit));
    let given = [q.before, q.after, q.around].iter().filter(|v| v.is_some()).count();
    match q.anchor() {
        Err(_) => assert!(given > 1),
        Ok(HistoryAnchor::Latest) => assert_eq!(given, 0),
        Ok(HistoryAnchor::Before(b)) => assert_eq!((given, q.before), (1, Some(b))),
        Ok(HistoryAnchor::After(a)) => assert_eq!((given, q.after), (1, Some(a))),
        Ok(HistoryAnchor::Around(a)) => assert_eq!((given, q.around), (1, Some(a))),
    }
}

fn check_page(uri: &axum::http::Uri, query: &str) {
    let got = extract::<Page>(uri);
    let want =
        pairs(query, &["after", "limit"]).and_then(|m| Some((field(&m, "after", id)?, field(&m, "limit", limit)?)));
    assert_eq!(got.as_ref().map(|p| (p.after, p.limit)), want, "members ?{query}");
}

fn check_search(uri: &axum::http::Uri, query: &str) {
    let got = extract::<SearchQuery>(uri);
    let want = pairs(query, &["q", "limit"]).and_then(|m| {
        let q = m.get("q")?.clone();
        Some((q, field(&m, "limit", limit)?))
    });
    assert_eq!(got.as_ref().map(|s| (s.q.clone(), s.limit)), want, "search ?{query}");
    if let Some(s) = got {
        let again =
            extract::<SearchQuery>(&encode(&[("q", Some(s.q.clone())), ("limit", s.limit.map(|v| v.to_string()))]))
                .expect("re-encoded search query");
        assert_eq!((again.q, again.limit), (s.q, s.limit));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    // Only what a request line can carry reaches the extractor.
    let Ok(uri) = format!("/x?{query}").parse::<axum::http::Uri>() else { return };
    let query = uri.query().unwrap_or("").to_owned();
    check_history(&uri, &query);
    check_page(&uri, &query);
    check_search(&uri, &query);
});
