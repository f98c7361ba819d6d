//! The guild audit log: every moderation and configuration action is recorded after it took
//! effect, with who acted, on what, why (`X-Audit-Log-Reason`) and what changed; members with
//! VIEW_AUDIT_LOG read it newest first.
//!
//! Recording never undoes the action it describes: when the store refuses the entry, the action
//! stands, the failure is logged and counted (`chorus_audit_log_failures_total`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::accounts::{Caller, now_ms};
use crate::Chat;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::model::{AuditAction, AuditChange, AuditEntry, AuditQuery, User};
use crate::permissions::Permissions;
use crate::view::deleted_user;

/// The longest reason kept (Discord's limit).
pub const MAX_REASON_CHARS: usize = 512;
pub const MAX_AUDIT_PAGE: u32 = 100;

/// `GET /guilds/{id}/audit-logs` query.
#[derive(Debug, Default, Deserialize)]
pub struct AuditLogParams {
    pub before: Option<Id>,
    pub limit: Option<u32>,
    pub user_id: Option<Id>,
    pub action_type: Option<String>,
}

/// A page of the audit log with the users it names (actors and member targets).
#[derive(Debug, Serialize)]
pub struct AuditLogView {
    pub audit_log_entries: Vec<AuditEntry>,
    pub users: Vec<User>,
}

/// One changed property, for the entry's `changes`.
pub fn change(key: &str, old: impl Serialize, new: impl Serialize) -> AuditChange {
    AuditChange {
        key: key.to_owned(),
        old_value: serde_json::to_value(old).unwrap_or(serde_json::Value::Null),
        new_value: serde_json::to_value(new).unwrap_or(serde_json::Value::Null),
    }
}

/// The property as a change when it differs (edits record only what they changed).
pub fn changed<T: Serialize + PartialEq>(key: &str, old: &T, new: &T) -> Option<AuditChange> {
    (old != new).then(|| change(key, old, new))
}

/// The reason as recorded: percent-decoded UTF-8 (as Discord's clients send it), trimmed, cut at
/// [`MAX_REASON_CHARS`]; None when empty or not decodable.
pub fn parse_reason(header: &[u8]) -> Option<String> {
    let decoded = percent_encoding::percent_decode(header).decode_utf8().ok()?;
    let reason: String = decoded.trim().chars().filter(|c| !c.is_control()).take(MAX_REASON_CHARS).collect();
    (!reason.is_empty()).then_some(reason)
}

impl Chat {
    /// Records an action that took effect. Never fails the action.
    pub(crate) async fn audit(
        &self,
        caller: &Caller,
        guild_id: Id,
        action_type: AuditAction,
        target_id: Option<Id>,
        changes: Vec<AuditChange>,
    ) {
        let entry = AuditEntry {
            id: self.ids.next(),
            guild_id,
            user_id: caller.user.id,
            action_type,
            target_id,
            reason: caller.audit_reason.clone(),
            changes,
            created_at: now_ms(),
        };
        if let Err(e) = self.store.insert_audit_entry(&entry).await {
            self.metrics.audit_failures.inc();
            tracing::error!(error = %e, guild_id = %guild_id, action = action_type.as_str(), "audit log entry not recorded");
        }
    }

    pub async fn audit_log(&self, caller: &Caller, guild_id: Id, params: AuditLogParams) -> Result<AuditLogView> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::VIEW_AUDIT_LOG)?;
        let limit = params.limit.unwrap_or(50);
        if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
            return Err(Error::field("limit", format!("must be 1 to {MAX_AUDIT_PAGE}")));
        }
        let action_type = match params.action_type.as_deref() {
            None | Some("") => None,
            Some(a) => Some(AuditAction::parse(a).ok_or_else(|| Error::field("action_type", "unknown action type"))?),
        };
        let query = AuditQuery { before: params.before, limit, user_id: params.user_id, action_type };
        let entries = self.store.audit_entries(guild_id, query).await?;
        let mut ids: Vec<Id> = entries.iter().map(|e| e.user_id).collect();
        ids.extend(entries.iter().filter(|e| names_a_user(e.action_type)).filter_map(|e| e.target_id));
        ids.sort_unstable();
        ids.dedup();
        let found: HashMap<Id, User> = self.store.users(&ids).await?.into_iter().map(|u| (u.id, u)).collect();
        let users = ids.into_iter().map(|id| found.get(&id).cloned().unwrap_or_else(|| deleted_user(id))).collect();
        Ok(AuditLogView { audit_log_entries: entries, users })
    }
}

/// Entries whose target is a user (so the page carries that user).
fn names_a_user(action: AuditAction) -> bool {
    matches!(
        action,
        AuditAction::MemberKick
            | AuditAction::MemberBanAdd
            | AuditAction::MemberBanRemove
            | AuditAction::MemberUpdate
            | AuditAction::MemberRoleUpdate
            | AuditAction::MemberMove
            | AuditAction::MemberDisconnect
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_percent_decoded_and_cut_at_512_characters() {
        assert_eq!(parse_reason(b"spam%20links%20%F0%9F%99%83").as_deref(), Some("spam links 🙃"));
        assert_eq!(parse_reason(b"plain words").as_deref(), Some("plain words"));
        let long = "é".repeat(600);
        assert_eq!(parse_reason(long.as_bytes()).map(|r| r.chars().count()), Some(MAX_REASON_CHARS));
    }

    #[test]
    fn an_empty_or_undecodable_reason_is_none() {
        assert_eq!(parse_reason(b"   "), None);
        assert_eq!(parse_reason(b"%FF%FE"), None);
        assert_eq!(parse_reason(b"%0A%0D"), None, "control characters are dropped");
    }

    #[test]
    fn only_what_differs_is_a_change() {
        assert!(changed("name", &"a", &"a").is_none());
        let c = changed("name", &"a", &"b").unwrap();
        assert_eq!((c.old_value, c.new_value), (serde_json::json!("a"), serde_json::json!("b")));
    }
}
