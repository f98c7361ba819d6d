//! Parsing at the edge: request fields become values that cannot be invalid.

use crate::error::{Error, Result};

pub const MAX_MESSAGE_CHARS: usize = 4000;

/// 2–32 characters of ASCII letters, digits, `_`, `.` and `-`; compared case-insensitively.
pub fn username(raw: &str) -> Result<String> {
    let n = raw.chars().count();
    if !(2..=32).contains(&n) {
        return Err(Error::field("username", "must be 2 to 32 characters"));
    }
    if !raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(Error::field("username", "may contain only letters, digits, '_', '.' and '-'"));
    }
    Ok(raw.to_string())
}

/// 8–128 characters.
pub fn password(raw: &str) -> Result<String> {
    let n = raw.chars().count();
    if n < 8 {
        return Err(Error::field("password", "must be at least 8 characters"));
    }
    if n > 128 {
        return Err(Error::field("password", "must be at most 128 characters"));
    }
    Ok(raw.to_string())
}

/// A trimmed name of 1..=max characters with no control characters.
pub fn name(field: &str, raw: &str, max: usize) -> Result<String> {
    let t = raw.trim();
    let n = t.chars().count();
    if n == 0 || n > max {
        return Err(Error::field(field, format!("must be 1 to {max} characters")));
    }
    if t.chars().any(char::is_control) {
        return Err(Error::field(field, "must not contain control characters"));
    }
    Ok(t.to_string())
}

/// Channel names: lower-cased for text channels, spaces become dashes (Discord's convention).
pub fn channel_name(raw: &str, text: bool) -> Result<String> {
    let n = name("name", raw, 100)?;
    if !text {
        return Ok(n);
    }
    // Lower-casing can lengthen a name (`İ` becomes `i̇`, two characters): the stored name obeys the
    // same rule as the one sent, so a name read back and sent again is accepted.
    name("name", &n.to_lowercase().replace(' ', "-"), 100)
}

/// Message content: 1–4000 characters and not only whitespace.
pub fn content(raw: &str) -> Result<String> {
    if raw.trim().is_empty() {
        return Err(Error::field("content", "must not be empty"));
    }
    if raw.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Error::field("content", format!("must be at most {MAX_MESSAGE_CHARS} characters")));
    }
    Ok(raw.to_string())
}

/// Optional text of up to `max` characters; empty means none.
pub fn optional_text(field: &str, raw: Option<&str>, max: usize) -> Result<Option<String>> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() > max => Err(Error::field(field, format!("must be at most {max} characters"))),
        Some(t) => Ok(Some(t.to_string())),
    }
}

/// Nonces: up to 64 characters.
pub fn nonce(raw: Option<&str>) -> Result<Option<String>> {
    match raw {
        None => Ok(None),
        Some(n) if n.is_empty() || n.len() > 64 => Err(Error::field("nonce", "must be 1 to 64 bytes")),
        Some(n) => Ok(Some(n.to_string())),
    }
}

/// Emoji in reactions: one Unicode emoji (a short grapheme sequence) or `name:id` custom form.
pub fn emoji(raw: &str) -> Result<String> {
    let n = raw.chars().count();
    if n == 0 || raw.len() > 64 || raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/') {
        return Err(Error::bad_request("invalid_emoji", "not a valid emoji"));
    }
    if raw.chars().all(|c| c.is_ascii_alphanumeric()) && n > 0 {
        // Plain words are not emoji; require at least one non-alphanumeric character.
        return Err(Error::bad_request("invalid_emoji", "not a valid emoji"));
    }
    Ok(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(username("alice_01").is_ok());
        assert!(username("a").is_err());
        assert!(username("has space").is_err());
        assert!(username(&"x".repeat(33)).is_err());
        assert!(username("émile").is_err());
    }

    #[test]
    fn content_limits_count_characters_not_bytes() {
        assert!(content(&"é".repeat(4000)).is_ok());
        assert!(content(&"é".repeat(4001)).is_err());
        assert!(content("   ").is_err());
    }

    #[test]
    fn text_channel_names_are_normalised() {
        assert_eq!(channel_name("Off Topic", true).unwrap(), "off-topic");
        assert_eq!(channel_name("Off Topic", false).unwrap(), "Off Topic");
    }

    #[test]
    fn text_channel_names_are_limited_after_lower_casing() {
        // Found with the `validate` fuzz target: 60 × `İ` (60 characters) lower-cases to 120.
        assert!(channel_name(&"İ".repeat(60), true).is_err());
        assert!(channel_name(&"İ".repeat(60), false).is_ok());
        let fifty = channel_name(&"İ".repeat(50), true).unwrap();
        assert_eq!(fifty.chars().count(), 100);
        assert_eq!(channel_name(&fifty, true).unwrap(), fifty);
    }

    #[test]
    fn emoji_rules() {
        assert!(emoji("👍").is_ok());
        assert!(emoji("party:123").is_ok());
        assert!(emoji("hello").is_err());
        assert!(emoji("a b").is_err());
    }
}
