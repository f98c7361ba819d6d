//! Mentions parsed on the server: `<@USER_ID>`, `<@!USER_ID>`, `<@&ROLE_ID>`, `@everyone`, `@here`.

use crate::id::Id;
use crate::model::Mentions;

/// At most this many distinct user or role mentions are recorded per message.
const MAX_MENTIONS: usize = 50;

pub fn parse(content: &str) -> Mentions {
    let mut m = Mentions::default();
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let (is_role, body) = match rest.as_bytes().first() {
            Some(b'&') => (true, &rest[1..]),
            Some(b'!') => (false, &rest[1..]),
            _ => (false, rest),
        };
        let Some(end) = body.find('>') else { break };
        if let Ok(id) = body[..end].parse::<Id>() {
            let list = if is_role { &mut m.roles } else { &mut m.users };
            if !list.contains(&id) && list.len() < MAX_MENTIONS {
                list.push(id);
            }
        }
    }
    m.everyone = content.contains("@everyone") || content.contains("@here");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_users_roles_and_everyone() {
        let m = parse("hi <@12> and <@!13>, <@&99> <@12> @everyone");
        assert_eq!(m.users, vec![Id::from_raw(12), Id::from_raw(13)]);
        assert_eq!(m.roles, vec![Id::from_raw(99)]);
        assert!(m.everyone);
    }

    #[test]
    fn ignores_malformed_mentions() {
        let m = parse("<@abc> <@ <@&> <@12");
        assert!(m.users.is_empty() && m.roles.is_empty() && !m.everyone);
    }
}
