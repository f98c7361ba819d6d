//! Link previews: the http(s) links of a message become embeds (title, description, site name,
//! image) fetched by the server in the background, never by the viewers' browsers.
//!
//! - `address.rs`: which addresses the fetcher may connect to (public unicast only, every record of
//!   a name checked, also after redirects), with an allow-list for tests.
//! - `fetch.rs`: the SSRF-safe fetcher — it resolves names itself and pins the connection to the
//!   checked address, follows at most 3 redirects (each checked again), bounds time and size, takes
//!   only HTML or images, sends no cookies.
//! - `html.rs`: OpenGraph / Twitter card / `<title>` metadata from a page's head, tolerant of bad
//!   markup, entities decoded, lengths bounded.
//!
//! It knows nothing of messages: `service/previews.rs` finds links, caches embeds per URL, stores
//! them on the message and serves preview images through a signed proxy URL.

pub mod address;
pub mod fetch;
pub mod html;

use serde::{Deserialize, Serialize};

/// A link's preview, as stored with its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Embed {
    pub url: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub site_name: Option<String>,
    /// The page's image, as its own (remote) URL; views show it through the proxy.
    pub image: Option<String>,
}

/// Links previewed per message.
pub const MAX_LINKS: usize = 3;

/// The http(s) links in a message's text, in order, without duplicates, at most [`MAX_LINKS`].
/// A link ends at whitespace or `<>`; trailing punctuation of the sentence is not part of it, and
/// `<https://…>` (Discord's way to suppress a preview) is skipped.
pub fn links(content: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = content;
    while let Some(start) = find_scheme(rest) {
        let suppressed = rest[..start].ends_with('<');
        let tail = &rest[start..];
        let end = tail.find(|c: char| c.is_whitespace() || c == '<' || c == '>').unwrap_or(tail.len());
        let mut link = &tail[..end];
        while let Some(stripped) = link.strip_suffix(['.', ',', ';', ':', '!', '?', ')', '"', '\'', '*', '_', '`']) {
            // Keep a closing parenthesis that closes one opened inside the link (Wikipedia-style URLs).
            if link.ends_with(')') && link.matches('(').count() >= link.matches(')').count() {
                break;
            }
            link = stripped;
        }
        if !suppressed && link.len() > "https://".len() && link.len() <= 2048 && !out.iter().any(|l| l == link) {
            out.push(link.to_owned());
            if out.len() == MAX_LINKS {
                break;
            }
        }
        rest = &tail[end..];
    }
    out
}

fn find_scheme(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    match (lower.find("https://"), lower.find("http://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_in_order_without_sentence_punctuation_or_duplicates() {
        let text = "see https://example.org/a, and (https://example.org/b). also http://x.test/c?d=1!";
        assert_eq!(links(text), vec!["https://example.org/a", "https://example.org/b", "http://x.test/c?d=1"]);
        assert_eq!(
            links("https://en.wikipedia.org/wiki/Rust_(language)"),
            vec!["https://en.wikipedia.org/wiki/Rust_(language)"]
        );
        assert_eq!(links("https://a.test https://a.test"), vec!["https://a.test"]);
        assert_eq!(links("no preview for <https://quiet.test/>"), Vec::<String>::new());
        assert_eq!(links("https://1.test https://2.test https://3.test https://4.test").len(), MAX_LINKS);
        assert!(links("ftp://files.test and javascript:alert(1) and https://").is_empty());
    }
}
