//! A [`Store`] decorator that times every operation into `chorus_store_op_duration_seconds{op, backend}`.
//! Kept apart from the backends so both are measured the same way and neither knows of Prometheus.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus::{HistogramOpts, HistogramVec, Registry};

use super::{HistoryAnchor, Inserted, Store, StoreResult};
use crate::id::Id;
use crate::model::*;

/// Wraps a backend; every call observes its wall time (including failures) under its method name.
pub struct Metered {
    inner: Arc<dyn Store>,
    latency: HistogramVec,
}

impl Metered {
    pub fn wrap(inner: Arc<dyn Store>, registry: &Registry) -> Arc<dyn Store> {
        let latency = HistogramVec::new(
            HistogramOpts::new("chorus_store_op_duration_seconds", "Store operation latency, by operation and backend")
                .buckets(vec![0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
            &["op", "backend"],
        )
        .expect("static metric definition");
        // A second Chat in one registry (tests) keeps the first registration, as ChatMetrics does.
        let _ = registry.register(Box::new(latency.clone()));
        Arc::new(Metered { inner, latency })
    }

    fn time(&self, op: &'static str) -> Timer {
        Timer { start: Instant::now(), hist: self.latency.with_label_values(&[op, self.inner.backend()]) }
    }
}

/// Observes on drop, so early returns and errors are timed too.
struct Timer {
    start: Instant,
    hist: prometheus::Histogram,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.hist.observe(self.start.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl Store for Metered {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn ping(&self) -> StoreResult<()> {
        let _t = self.time("ping");
        self.inner.ping().await
    }

    async fn flush(&self) -> StoreResult<()> {
        let _t = self.time("flush");
        self.inner.flush().await
    }

    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let _t = self.time("insert_user");
        self.inner.insert_user(user).await
    }

    async fn user(&self, id: Id) -> StoreResult<Option<UserRecord>> {
        let _t = self.time("user");
        self.inner.user(id).await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let _t = self.time("user_by_username");
        self.inner.user_by_username(username).await
    }

    async fn users(&self, ids: &[Id]) -> StoreResult<Vec<User>> {
        let _t = self.time("users");
        self.inner.users(ids).await
    }

    async fn first_user(&self) -> StoreResult<Option<User>> {
        let _t = self.time("first_user");
        self.inner.first_user().await
    }

    async fn set_display_name(&self, id: Id, display_name: Option<&str>) -> StoreResult<()> {
        let _t = self.time("set_display_name");
        self.inner.set_display_name(id, display_name).await
    }
    async fn set_password_hash(&self, id: Id, password_hash: &str) -> StoreResult<()> {
        let _t = self.time("set_password_hash");
        self.inner.set_password_hash(id, password_hash).await
    }
    async fn set_user_flags(&self, id: Id, admin: bool, disabled: bool) -> StoreResult<()> {
        let _t = self.time("set_user_flags");
        self.inner.set_user_flags(id, admin, disabled).await
    }
    async fn list_users(&self, after: Id, limit: u32) -> StoreResult<Vec<UserRecord>> {
        let _t = self.time("list_users");
        self.inner.list_users(after, limit).await
    }
    async fn delete_sessions_of(&self, user_id: Id) -> StoreResult<u64> {
        let _t = self.time("delete_sessions_of");
        self.inner.delete_sessions_of(user_id).await
    }
    async fn list_guilds(&self, after: Id, limit: u32) -> StoreResult<Vec<Guild>> {
        let _t = self.time("list_guilds");
        self.inner.list_guilds(after, limit).await
    }
    async fn insert_instance_invite(&self, invite: &InstanceInvite) -> StoreResult<()> {
        let _t = self.time("insert_instance_invite");
        self.inner.insert_instance_invite(invite).await
    }
    async fn use_instance_invite(&self, code: &str, now: Timestamp) -> StoreResult<Option<InstanceInvite>> {
        let _t = self.time("use_instance_invite");
        self.inner.use_instance_invite(code, now).await
    }

    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        let _t = self.time("insert_session");
        self.inner.insert_session(session).await
    }

    async fn session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        let _t = self.time("session_by_token_hash");
        self.inner.session_by_token_hash(token_hash).await
    }

    async fn sessions_of(&self, user_id: Id) -> StoreResult<Vec<Session>> {
        let _t = self.time("sessions_of");
        self.inner.sessions_of(user_id).await
    }

    async fn delete_session(&self, user_id: Id, session_id: Id) -> StoreResult<bool> {
        let _t = self.time("delete_session");
        self.inner.delete_session(user_id, session_id).await
    }

    async fn insert_guild(&self, guild: &Guild) -> StoreResult<()> {
        let _t = self.time("insert_guild");
        self.inner.insert_guild(guild).await
    }

    async fn guild(&self, id: Id) -> StoreResult<Option<Guild>> {
        let _t = self.time("guild");
        self.inner.guild(id).await
    }

    async fn update_guild(&self, guild: &Guild) -> StoreResult<()> {
        let _t = self.time("update_guild");
        self.inner.update_guild(guild).await
    }

    async fn delete_guild(&self, id: Id) -> StoreResult<()> {
        let _t = self.time("delete_guild");
        self.inner.delete_guild(id).await
    }

    async fn put_channel(&self, channel: &Channel) -> StoreResult<()> {
        let _t = self.time("put_channel");
        self.inner.put_channel(channel).await
    }

    async fn channel(&self, id: Id) -> StoreResult<Option<Channel>> {
        let _t = self.time("channel");
        self.inner.channel(id).await
    }

    async fn guild_channels(&self, guild_id: Id) -> StoreResult<Vec<Channel>> {
        let _t = self.time("guild_channels");
        self.inner.guild_channels(guild_id).await
    }

    async fn delete_channel(&self, id: Id) -> StoreResult<()> {
        let _t = self.time("delete_channel");
        self.inner.delete_channel(id).await
    }

    async fn dm_channel(&self, a: Id, b: Id) -> StoreResult<Option<Channel>> {
        let _t = self.time("dm_channel");
        self.inner.dm_channel(a, b).await
    }

    async fn dm_channels_of(&self, user_id: Id) -> StoreResult<Vec<Channel>> {
        let _t = self.time("dm_channels_of");
        self.inner.dm_channels_of(user_id).await
    }

    async fn put_role(&self, role: &Role) -> StoreResult<()> {
        let _t = self.time("put_role");
        self.inner.put_role(role).await
    }

    async fn guild_roles(&self, guild_id: Id) -> StoreResult<Vec<Role>> {
        let _t = self.time("guild_roles");
        self.inner.guild_roles(guild_id).await
    }

    async fn delete_role(&self, guild_id: Id, role_id: Id) -> StoreResult<()> {
        let _t = self.time("delete_role");
        self.inner.delete_role(guild_id, role_id).await
    }

    async fn insert_member(&self, member: &Member) -> StoreResult<()> {
        let _t = self.time("insert_member");
        self.inner.insert_member(member).await
    }

    async fn member(&self, guild_id: Id, user_id: Id) -> StoreResult<Option<Member>> {
        let _t = self.time("member");
        self.inner.member(guild_id, user_id).await
    }

    async fn members(&self, guild_id: Id, after: Id, limit: u32) -> StoreResult<Vec<Member>> {
        let _t = self.time("members");
        self.inner.members(guild_id, after, limit).await
    }

    async fn update_member(&self, member: &Member) -> StoreResult<()> {
        let _t = self.time("update_member");
        self.inner.update_member(member).await
    }

    async fn delete_member(&self, guild_id: Id, user_id: Id) -> StoreResult<bool> {
        let _t = self.time("delete_member");
        self.inner.delete_member(guild_id, user_id).await
    }

    async fn member_count(&self, guild_id: Id) -> StoreResult<u64> {
        let _t = self.time("member_count");
        self.inner.member_count(guild_id).await
    }

    async fn guilds_of(&self, user_id: Id) -> StoreResult<Vec<Id>> {
        let _t = self.time("guilds_of");
        self.inner.guilds_of(user_id).await
    }

    async fn put_ban(&self, ban: &Ban) -> StoreResult<()> {
        let _t = self.time("put_ban");
        self.inner.put_ban(ban).await
    }

    async fn ban(&self, guild_id: Id, user_id: Id) -> StoreResult<Option<Ban>> {
        let _t = self.time("ban");
        self.inner.ban(guild_id, user_id).await
    }

    async fn bans(&self, guild_id: Id) -> StoreResult<Vec<Ban>> {
        let _t = self.time("bans");
        self.inner.bans(guild_id).await
    }

    async fn delete_ban(&self, guild_id: Id, user_id: Id) -> StoreResult<bool> {
        let _t = self.time("delete_ban");
        self.inner.delete_ban(guild_id, user_id).await
    }

    async fn insert_invite(&self, invite: &Invite) -> StoreResult<()> {
        let _t = self.time("insert_invite");
        self.inner.insert_invite(invite).await
    }

    async fn invite(&self, code: &str) -> StoreResult<Option<Invite>> {
        let _t = self.time("invite");
        self.inner.invite(code).await
    }

    async fn guild_invites(&self, guild_id: Id) -> StoreResult<Vec<Invite>> {
        let _t = self.time("guild_invites");
        self.inner.guild_invites(guild_id).await
    }

    async fn delete_invite(&self, code: &str) -> StoreResult<bool> {
        let _t = self.time("delete_invite");
        self.inner.delete_invite(code).await
    }

    async fn use_invite(&self, code: &str, now: Timestamp) -> StoreResult<Option<Invite>> {
        let _t = self.time("use_invite");
        self.inner.use_invite(code, now).await
    }

    async fn insert_message(&self, message: &Message) -> StoreResult<Inserted> {
        let _t = self.time("insert_message");
        self.inner.insert_message(message).await
    }

    async fn message(&self, channel_id: Id, id: Id) -> StoreResult<Option<Message>> {
        let _t = self.time("message");
        self.inner.message(channel_id, id).await
    }

    async fn update_message(&self, message: &Message) -> StoreResult<()> {
        let _t = self.time("update_message");
        self.inner.update_message(message).await
    }

    async fn delete_message(&self, channel_id: Id, id: Id) -> StoreResult<bool> {
        let _t = self.time("delete_message");
        self.inner.delete_message(channel_id, id).await
    }

    async fn messages(&self, channel_id: Id, anchor: HistoryAnchor, limit: u32) -> StoreResult<Vec<Message>> {
        let _t = self.time("messages");
        self.inner.messages(channel_id, anchor, limit).await
    }

    async fn pinned_messages(&self, channel_id: Id) -> StoreResult<Vec<Message>> {
        let _t = self.time("pinned_messages");
        self.inner.pinned_messages(channel_id).await
    }

    async fn count_messages_after(&self, channel_id: Id, after: Id, cap: u32) -> StoreResult<u32> {
        let _t = self.time("count_messages_after");
        self.inner.count_messages_after(channel_id, after, cap).await
    }

    async fn count_mentions_after(
        &self,
        channel_id: Id,
        after: Id,
        user_id: Id,
        role_ids: &[Id],
        cap: u32,
    ) -> StoreResult<u32> {
        let _t = self.time("count_mentions_after");
        self.inner.count_mentions_after(channel_id, after, user_id, role_ids, cap).await
    }

    async fn search_messages(&self, channel_ids: &[Id], query: &str, limit: u32) -> StoreResult<Vec<Message>> {
        let _t = self.time("search_messages");
        self.inner.search_messages(channel_ids, query, limit).await
    }

    async fn add_reaction(&self, message_id: Id, emoji: &str, user_id: Id) -> StoreResult<bool> {
        let _t = self.time("add_reaction");
        self.inner.add_reaction(message_id, emoji, user_id).await
    }

    async fn remove_reaction(&self, message_id: Id, emoji: &str, user_id: Id) -> StoreResult<bool> {
        let _t = self.time("remove_reaction");
        self.inner.remove_reaction(message_id, emoji, user_id).await
    }

    async fn reactions(&self, message_ids: &[Id], viewer: Id) -> StoreResult<Vec<ReactionCount>> {
        let _t = self.time("reactions");
        self.inner.reactions(message_ids, viewer).await
    }

    async fn ack(&self, user_id: Id, channel_id: Id, message_id: Id) -> StoreResult<()> {
        let _t = self.time("ack");
        self.inner.ack(user_id, channel_id, message_id).await
    }

    async fn read_states(&self, user_id: Id) -> StoreResult<Vec<ReadState>> {
        let _t = self.time("read_states");
        self.inner.read_states(user_id).await
    }

    async fn set_username(&self, id: Id, username: &str) -> StoreResult<()> {
        let _t = self.time("set_username");
        self.inner.set_username(id, username).await
    }

    async fn set_totp(&self, id: Id, secret: Option<&str>, recovery_codes: &[String]) -> StoreResult<()> {
        let _t = self.time("set_totp");
        self.inner.set_totp(id, secret, recovery_codes).await
    }

    async fn use_totp_step(&self, id: Id, step: u64) -> StoreResult<bool> {
        let _t = self.time("use_totp_step");
        self.inner.use_totp_step(id, step).await
    }

    async fn use_recovery_code(&self, id: Id, code_hash: &str) -> StoreResult<bool> {
        let _t = self.time("use_recovery_code");
        self.inner.use_recovery_code(id, code_hash).await
    }

    async fn delete_user(&self, id: Id) -> StoreResult<()> {
        let _t = self.time("delete_user");
        self.inner.delete_user(id).await
    }

    async fn message_by_nonce(&self, channel_id: Id, author_id: Id, nonce: &str) -> StoreResult<Option<Message>> {
        let _t = self.time("message_by_nonce");
        self.inner.message_by_nonce(channel_id, author_id, nonce).await
    }

    async fn set_embeds(
        &self,
        channel_id: Id,
        id: Id,
        content: &str,
        embeds: &[crate::previews::Embed],
    ) -> StoreResult<bool> {
        let _t = self.time("set_embeds");
        self.inner.set_embeds(channel_id, id, content, embeds).await
    }

    async fn add_upload_usage(&self, user_id: Id, delta: i64) -> StoreResult<u64> {
        let _t = self.time("add_upload_usage");
        self.inner.add_upload_usage(user_id, delta).await
    }

    async fn upload_usage(&self, user_id: Id) -> StoreResult<u64> {
        let _t = self.time("upload_usage");
        self.inner.upload_usage(user_id).await
    }

    async fn insert_audit_entry(&self, entry: &AuditEntry) -> StoreResult<()> {
        let _t = self.time("insert_audit_entry");
        self.inner.insert_audit_entry(entry).await
    }

    async fn audit_entries(&self, guild_id: Id, query: AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let _t = self.time("audit_entries");
        self.inner.audit_entries(guild_id, query).await
    }
}
