//! A page's preview metadata from its HTML: `og:title`, `og:description`, `og:site_name`,
//! `og:image` (and the `twitter:` equivalents), else `<title>` and `<meta name=description>`. A
//! small tolerant scanner over tags and attributes — no scripting, no DOM — with entities decoded
//! and every value bounded.

const MAX_TITLE: usize = 256;
const MAX_DESCRIPTION: usize = 1024;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub title: Option<String>,
    pub description: Option<String>,
    pub site_name: Option<String>,
    pub image: Option<String>,
}

/// Bytes of an attribute value looked at (longer values are cut before decoding).
const MAX_RAW_VALUE: usize = 4096;

/// Linear in the page's length (it runs on untrusted input of up to 512 KiB).
pub fn parse(html: &str) -> Meta {
    let mut m = Meta::default();
    // Where the first `</title` is, found once (searching again per `<title` would be quadratic).
    let title_end = html.to_ascii_lowercase().find("</title");
    let mut fallback_title = None;
    let mut fallback_description = None;
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(open) = lower[at..].find('<').map(|i| at + i) {
        let Some(close) = tag_end(&lower, open) else { break };
        let tag = &html[open + 1..close];
        let tag_lower = &lower[open + 1..close];
        if tag_lower.starts_with("meta") {
            let attrs = attributes(&tag[4..]);
            let key = attr(&attrs, "property").or_else(|| attr(&attrs, "name")).map(|k| k.to_ascii_lowercase());
            let content = attr(&attrs, "content").map(|c| clean(c, MAX_DESCRIPTION));
            if let (Some(key), Some(content)) = (key, content.filter(|c| !c.is_empty())) {
                match key.as_str() {
                    "og:title" | "twitter:title" => {
                        m.title.get_or_insert_with(|| truncate(&content, MAX_TITLE));
                    }
                    "og:description" | "twitter:description" => {
                        m.description.get_or_insert(content);
                    }
                    "og:site_name" => {
                        m.site_name.get_or_insert_with(|| truncate(&content, MAX_TITLE));
                    }
                    "og:image" | "og:image:url" | "twitter:image" => {
                        m.image.get_or_insert(content);
                    }
                    "description" => {
                        fallback_description.get_or_insert(content);
                    }
                    _ => {}
                }
            }
        } else if tag_lower.starts_with("title") && fallback_title.is_none() {
            if let Some(end) = title_end.filter(|e| *e > close) {
                fallback_title = Some(clean(&html[close + 1..end], MAX_TITLE));
            }
        } else if tag_lower.starts_with("/head") || tag_lower.starts_with("body") {
            break;
        }
        at = close + 1;
    }
    m.title = m.title.or(fallback_title).filter(|t| !t.is_empty());
    m.description = m.description.or(fallback_description);
    m
}

/// The `>` that ends the tag opened at `open`, outside quoted attribute values.
fn tag_end(s: &str, open: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, b) in s.bytes().enumerate().skip(open + 1) {
        match (quote, b) {
            (Some(q), b) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'>') => return Some(i),
            (None, _) => {}
        }
    }
    None
}

/// `name="value"`, `name='value'` and `name=value` pairs.
fn attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        let name = s[name_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let start = i + 1;
                let end = s[start..].find(q as char).map_or(s.len(), |e| start + e);
                i = (end + 1).min(b.len());
                &s[start..end.min(s.len())]
            } else {
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                &s[start..i]
            };
            out.push((name, value.to_owned()));
        } else if !name.is_empty() {
            out.push((name, String::new()));
        } else {
            i += 1;
        }
    }
    out
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Entities decoded, whitespace collapsed, control characters dropped, at most `max` characters.
fn clean(raw: &str, max: usize) -> String {
    let mut cut = raw.len().min(MAX_RAW_VALUE);
    while !raw.is_char_boundary(cut) {
        cut -= 1;
    }
    let decoded = decode_entities(&raw[..cut]);
    let collapsed: String = decoded.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&collapsed.chars().filter(|c| !c.is_control()).collect::<String>(), max)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        // An entity is at most 10 bytes: look no further (a search to the end would be quadratic).
        let window = &after.as_bytes()[..after.len().min(11)];
        let Some(semi) = window.iter().position(|b| *b == b';') else {
            out.push('&');
            rest = after;
            continue;
        };
        let entity = &after[..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            e if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
            }
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opengraph_wins_over_the_title_and_entities_are_decoded() {
        let html = r#"<html><head><title>Plain title</title>
            <meta property="og:title" content="Rust &amp; friends">
            <meta name='description' content='fallback'>
            <META PROPERTY=og:description CONTENT="A  language
               empowering everyone">
            <meta property="og:site_name" content="Example">
            <meta property="og:image" content="https://example.org/i.png" />
            </head><body><meta property="og:title" content="ignored: in the body"></body></html>"#;
        let m = parse(html);
        assert_eq!(m.title.as_deref(), Some("Rust & friends"));
        assert_eq!(m.description.as_deref(), Some("A language empowering everyone"));
        assert_eq!(m.site_name.as_deref(), Some("Example"));
        assert_eq!(m.image.as_deref(), Some("https://example.org/i.png"));
    }

    #[test]
    fn a_page_without_opengraph_falls_back_to_title_and_description() {
        let m = parse("<title> Hello &#x263A; world </title><meta name=\"description\" content=\"d\">");
        assert_eq!((m.title.as_deref(), m.description.as_deref()), (Some("Hello ☺ world"), Some("d")));
    }

    #[test]
    fn garbage_and_hostile_markup_yield_nothing_or_bounded_text() {
        assert_eq!(parse(""), Meta::default());
        assert_eq!(parse("<<<>>> <meta content=\"x\"> <title>"), Meta::default());
        let long = format!("<meta property=og:title content=\"{}\">", "é".repeat(5000));
        assert_eq!(parse(&long).title.map(|t| t.chars().count()), Some(MAX_TITLE));
        // Inputs that made an earlier version quadratic (minutes each); linear now.
        assert_eq!(parse(&"<title>".repeat(70_000)).title, None);
        let amps = format!("<meta property=og:title content=\"{}\">", "&".repeat(500_000));
        assert!(parse(&amps).title.is_some());
        let m = parse("<meta property=\"og:title\" content=\"<script>alert(1)</script>\">");
        assert_eq!(m.title.as_deref(), Some("<script>alert(1)</script>"), "kept as text; the client shows text");
    }
}
