//! Mentions in message content (`chat::mentions::parse`): `<@USER>`, `<@!USER>`, `<@&ROLE>`,
//! `@everyone`, `@here`. (The server parses no other markup: markdown is rendered by the web client.)
//!
//! Asserts: no panic on any text; the result equals an independent reading of the grammar (every
//! position where `<@`, an optional `!` or `&`, 1–19 digits of an id up to 2^63−1 and `>` start,
//! first-seen order, duplicates dropped, at most 50 of each kind); every id found is written in the
//! content; content built from known mentions and filler gives back exactly those mentions.
#![no_main]

use chat::Id;
use chat::model::Mentions;
use libfuzzer_sys::fuzz_target;

const MAX: usize = 50;

fn reference(content: &str) -> Mentions {
    let b = content.as_bytes();
    let mut m = Mentions::default();
    for i in 0..b.len() {
        if !b[i..].starts_with(b"<@") {
            continue;
        }
        let mut j = i + 2;
        let role = b.get(j) == Some(&b'&');
        if role || b.get(j) == Some(&b'!') {
            j += 1;
        }
        let digits = b[j..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 19 || b.get(j + digits) != Some(&b'>') {
            continue;
        }
        let v: u64 = content[j..j + digits].parse().unwrap();
        if v > i64::MAX as u64 {
            continue;
        }
        let list = if role { &mut m.roles } else { &mut m.users };
        let id = Id::from_raw(v);
        if !list.contains(&id) && list.len() < MAX {
            list.push(id);
        }
    }
    m.everyone = content.contains("@everyone") || content.contains("@here");
    m
}

fuzz_target!(|data: &[u8]| {
    let content = String::from_utf8_lossy(data);
    let m = chat::mentions::parse(&content);
    let r = reference(&content);
    assert_eq!(m.users, r.users, "users of {content:?}");
    assert_eq!(m.roles, r.roles, "roles of {content:?}");
    assert_eq!(m.everyone, r.everyone);
    for u in &m.users {
        assert!(content.contains(&format!("{u}>")), "{u} is not in {content:?}");
    }

    // Built from the bytes: ids in the three forms, separated by filler without '<' or '@'.
    let mut built = String::new();
    let mut users = Vec::new();
    let mut roles = Vec::new();
    for chunk in data.chunks_exact(9) {
        let id = Id::from_raw(u64::from_le_bytes(chunk[1..].try_into().unwrap()) & i64::MAX as u64);
        let (form, list) = match chunk[0] % 3 {
            0 => ("<@", &mut users),
            1 => ("<@!", &mut users),
            _ => ("<@&", &mut roles),
        };
        built.push_str(&format!("{form}{id}> text {} ", chunk[0]));
        if !list.contains(&id) && list.len() < MAX {
            list.push(id);
        }
    }
    let got = chat::mentions::parse(&built);
    assert_eq!((got.users, got.roles, got.everyone), (users, roles, false), "{built}");
});
