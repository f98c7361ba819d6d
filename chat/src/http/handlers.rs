//! Thin HTTP handlers: extract, call the service, pick the status code.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::{Auth, Body, ClientIp, OptionalBody, Path, Query};
use crate::Chat;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::model::HistoryAnchor;
use crate::service::channels::{ChannelPatch, NewChannel, OverwriteBody, double_option};
use crate::service::invites::NewInvite;
use crate::service::members::MemberPatch;
use crate::service::messages::NewMessage;
use crate::service::roles::RoleBody;

type S = State<Arc<Chat>>;

fn created<T: serde::Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn user_agent(h: &HeaderMap) -> Option<String> {
    h.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string)
}

// ---- accounts

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

#[derive(Deserialize)]
pub struct Registration {
    username: String,
    password: String,
    /// Needed when the instance's registration is `invite`.
    invite_code: Option<String>,
}

pub async fn register(
    State(chat): S,
    ClientIp(ip): ClientIp,
    h: HeaderMap,
    Body(b): Body<Registration>,
) -> Result<Response> {
    chat.limits.auth_ip(ip).await.map_err(|l| Error::RateLimited(l.0))?;
    Ok(created(chat.register(&b.username, &b.password, b.invite_code.as_deref(), user_agent(&h)).await?))
}

/// What a client needs before anyone logs in: which registration form to show.
pub async fn instance(State(chat): S) -> Json<serde_json::Value> {
    let uploads = chat.upload_limits();
    Json(serde_json::json!({
        "registration": chat.config.registration,
        "uploads": {
            "max_file_bytes": uploads.max_file_bytes,
            "max_message_bytes": uploads.max_message_bytes,
            "max_files": uploads.max_files,
        },
    }))
}

/// A link preview's image, fetched by the server (no bearer token: `<img src>`).
pub async fn preview_image(
    State(chat): S,
    ClientIp(ip): ClientIp,
    Query(q): Query<crate::service::previews::ProxyQuery>,
) -> Result<Response> {
    chat.limits.rest_ip(ip).await.map_err(|l| Error::RateLimited(l.0))?;
    chat.preview_image(q).await
}

/// A file of a message, by its signed URL (no bearer token: `<img src>` cannot send one).
pub async fn attachment(
    State(chat): S,
    ClientIp(ip): ClientIp,
    Path((channel, message, attachment, _name)): Path<(Id, Id, Id, String)>,
    Query(q): Query<crate::service::attachments::FileQuery>,
    h: HeaderMap,
) -> Result<Response> {
    chat.limits.rest_ip(ip).await.map_err(|l| Error::RateLimited(l.0))?;
    let range = h.get(header::RANGE).and_then(|v| v.to_str().ok());
    chat.serve_attachment((channel, message, attachment), q, range).await
}

pub async fn login(
    State(chat): S,
    ClientIp(ip): ClientIp,
    h: HeaderMap,
    Body(b): Body<Credentials>,
) -> Result<Response> {
    chat.limits.auth_ip(ip).await.map_err(|l| Error::RateLimited(l.0))?;
    Ok(Json(chat.login(&b.username, &b.password, user_agent(&h)).await?).into_response())
}

pub async fn logout(State(chat): S, Auth(c): Auth) -> Result<Response> {
    chat.logout(&c).await?;
    Ok(no_content())
}

pub async fn me(Auth(c): Auth) -> Json<crate::model::User> {
    Json(c.user)
}

#[derive(Deserialize)]
pub struct MePatch {
    #[serde(default, deserialize_with = "double_option")]
    display_name: Option<Option<String>>,
    /// A new username needs the password.
    username: Option<String>,
    password: Option<String>,
}

pub async fn update_me(
    State(chat): S,
    Auth(c): Auth,
    ClientIp(ip): ClientIp,
    Body(b): Body<MePatch>,
) -> Result<Response> {
    let mut user = c.user.clone();
    if let Some(name) = b.username.as_deref() {
        let Some(password) = b.password.as_deref() else {
            return Err(Error::field("password", "changing the username needs the password"));
        };
        // Guessing the password through a stolen session is a login attempt: the same limit.
        chat.limits.auth_ip(ip).await.map_err(|l| Error::RateLimited(l.0))?;
        user = chat.change_username(&c, name, password).await?;
    }
    if b.display_name.is_some() || b.username.is_none() {
        let c = crate::service::accounts::Caller { user, ..c };
        user = chat.update_me(&c, b.display_name).await?;
    }
    Ok(Json(user).into_response())
}

#[derive(Deserialize)]
pub struct DeleteAccount {
    password: String,
    code: Option<String>,
}

pub async fn delete_me(
    State(chat): S,
    Auth(c): Auth,
    ClientIp(ip): ClientIp,
    Body(b): Body<DeleteAccount>,
) -> Result<Response> {
    chat.limits.auth_ip(ip).await.map_err(|l| Error::RateLimited(l.0))?;
    chat.delete_account(&c, &b.password, b.code.as_deref()).await?;
    Ok(no_content())
}

pub async fn totp_setup(State(chat): S, Auth(c): Auth) -> Result<Response> {
    Ok(Json(chat.totp_setup(&c).await?).into_response())
}

pub async fn totp_enable(
    State(chat): S,
    Auth(c): Auth,
    Body(b): Body<crate::service::mfa::EnableTotp>,
) -> Result<Response> {
    let codes = chat.enable_totp(&c, b).await?;
    Ok(Json(serde_json::json!({ "recovery_codes": codes })).into_response())
}

pub async fn totp_disable(
    State(chat): S,
    Auth(c): Auth,
    Body(b): Body<crate::service::mfa::DisableTotp>,
) -> Result<Response> {
    chat.disable_totp(&c, b).await?;
    Ok(no_content())
}

pub async fn login_mfa(
    State(chat): S,
    ClientIp(ip): ClientIp,
    h: HeaderMap,
    Body(b): Body<crate::service::mfa::MfaLogin>,
) -> Result<Response> {
    chat.limits.auth_ip(ip).await.map_err(|l| Error::RateLimited(l.0))?;
    Ok(Json(chat.login_mfa(b, user_agent(&h)).await?).into_response())
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(chat): S,
    Auth(c): Auth,
    ClientIp(ip): ClientIp,
    Body(b): Body<PasswordChange>,
) -> Result<Response> {
    // Guessing the current password through a stolen session is a login attempt: the same limit.
    chat.limits.auth_ip(ip).await.map_err(|l| Error::RateLimited(l.0))?;
    let revoked = chat.change_password(&c, &b.current_password, &b.new_password).await?;
    Ok(Json(serde_json::json!({ "sessions_revoked": revoked })).into_response())
}

pub async fn sessions(State(chat): S, Auth(c): Auth) -> Result<Response> {
    Ok(Json(chat.sessions(&c).await?).into_response())
}

pub async fn revoke_session(State(chat): S, Auth(c): Auth, Path(id): Path<Id>) -> Result<Response> {
    chat.revoke_session(&c, id).await?;
    Ok(no_content())
}

pub async fn get_user(State(chat): S, Auth(_): Auth, Path(id): Path<Id>) -> Result<Response> {
    Ok(Json(chat.user(id).await?).into_response())
}

#[derive(Deserialize)]
pub struct DmBody {
    recipient_id: Id,
}

pub async fn my_dms(State(chat): S, Auth(c): Auth) -> Result<Response> {
    Ok(Json(chat.my_dms(&c).await?).into_response())
}

pub async fn open_dm(State(chat): S, Auth(c): Auth, Body(b): Body<DmBody>) -> Result<Response> {
    Ok(Json(chat.open_dm(&c, b.recipient_id).await?).into_response())
}

// ---- guilds

#[derive(Deserialize)]
pub struct NameBody {
    name: String,
}

pub async fn create_guild(State(chat): S, Auth(c): Auth, Body(b): Body<NameBody>) -> Result<Response> {
    Ok(created(chat.create_guild(&c, &b.name).await?))
}

pub async fn my_guilds(State(chat): S, Auth(c): Auth) -> Result<Response> {
    Ok(Json(chat.my_guilds(&c).await?).into_response())
}

pub async fn get_guild(State(chat): S, Auth(c): Auth, Path(g): Path<Id>) -> Result<Response> {
    Ok(Json(chat.get_guild(&c, g).await?).into_response())
}

pub async fn update_guild(
    State(chat): S,
    Auth(c): Auth,
    Path(g): Path<Id>,
    Body(b): Body<NameBody>,
) -> Result<Response> {
    Ok(Json(chat.rename_guild(&c, g, &b.name).await?).into_response())
}

pub async fn delete_guild(State(chat): S, Auth(c): Auth, Path(g): Path<Id>) -> Result<Response> {
    chat.delete_guild(&c, g).await?;
    Ok(no_content())
}

pub async fn leave_guild(State(chat): S, Auth(c): Auth, Path(g): Path<Id>) -> Result<Response> {
    chat.leave_guild(&c, g).await?;
    Ok(no_content())
}

// ---- channels

pub async fn guild_channels(State(chat): S, Auth(c): Auth, Path(g): Path<Id>) -> Result<Response> {
    Ok(Json(chat.guild_channels(&c, g).await?).into_response())
}

pub async fn create_channel(
    State(chat): S,
    Auth(c): Auth,
    Path(g): Path<Id>,
    Body(b): Body<NewChannel>,
) -> Result<Response> {
    Ok(created(chat.create_channel(&c, g, b).await?))
}

pub async fn get_channel(State(chat): S, Auth(c): Auth, Path(ch): Path<Id>) -> Result<Response> {
    Ok(Json(chat.get_channel(&c, ch).await?).into_response())
}

pub async fn update_channel(
    State(chat): S,
    Auth(c): Auth,
    Path(ch): Path<Id>,
    Body(b): Body<ChannelPatch>,
) -> Result<Response> {
    Ok(Json(chat.update_channel(&c, ch, b).await?).into_response())
}

pub async fn delete_channel(State(chat): S, Auth(c): Auth, Path(ch): Path<Id>) -> Result<Response> {
    chat.delete_channel(&c, ch).await?;
    Ok(no_content())
}

pub async fn put_overwrite(
    State(chat): S,
    Auth(c): Auth,
    Path((ch, target)): Path<(Id, Id)>,
    Body(b): Body<OverwriteBody>,
) -> Result<Response> {
    Ok(Json(chat.put_overwrite(&c, ch, target, b).await?).into_response())
}

pub async fn delete_overwrite(State(chat): S, Auth(c): Auth, Path((ch, target)): Path<(Id, Id)>) -> Result<Response> {
    Ok(Json(chat.delete_overwrite(&c, ch, target).await?).into_response())
}

// ---- invites

pub async fn create_invite(
    State(chat): S,
    Auth(c): Auth,
    Path(g): Path<Id>,
    OptionalBody(b): OptionalBody<NewInvite>,
) -> Result<Response> {
    Ok(created(chat.create_invite(&c, g, b).await?))
}

pub async fn invites(State(chat): S, Auth(c): Auth, Path(g): Path<Id>) -> Result<Response> {
    Ok(Json(chat.invites(&c, g).await?).into_response())
}

/// Public: a link opened before sign-up shows where it leads. Rate-limited per address like any REST call.
pub async fn preview_invite(State(chat): S, ClientIp(ip): ClientIp, Path(code): Path<String>) -> Result<Response> {
    chat.limits.rest_ip(ip).await.map_err(|l| Error::RateLimited(l.0))?;
    Ok(Json(chat.preview_invite(&code).await?).into_response())
}

pub async fn join_invite(State(chat): S, Auth(c): Auth, Path(code): Path<String>) -> Result<Response> {
    Ok(Json(chat.join_by_invite(&c, &code).await?).into_response())
}

pub async fn revoke_invite(State(chat): S, Auth(c): Auth, Path(code): Path<String>) -> Result<Response> {
    chat.revoke_invite(&c, &code).await?;
    Ok(no_content())
}

// ---- members, bans, roles

#[derive(Deserialize)]
pub struct Page {
    pub after: Option<Id>,
    pub limit: Option<u32>,
}

pub async fn members(State(chat): S, Auth(c): Auth, Path(g): Path<Id>, Query(p): Query<Page>) -> Result<Response> {
    Ok(Json(chat.members(&c, g, p.after, p.limit).await?).into_response())
}

/// `@me` stands for the caller in member routes.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum UserRef {
    Me(MeLiteral),
    Id(Id),
}
#[derive(Deserialize)]
pub enum MeLiteral {
    #[serde(rename = "@me")]
    Me,
}

impl UserRef {
    fn resolve(self, caller: &crate::service::accounts::Caller) -> Id {
        match self {
            UserRef::Me(_) => caller.user.id,
            UserRef::Id(id) => id,
        }
    }
}

pub async fn member(State(chat): S, Auth(c): Auth, Path((g, u)): Path<(Id, UserRef)>) -> Result<Response> {
    let u = u.resolve(&c);
    Ok(Json(chat.member(&c, g, u).await?).into_response())
}

pub async fn update_member(
    State(chat): S,
    Auth(c): Auth,
    Path((g, u)): Path<(Id, UserRef)>,
    Body(b): Body<MemberPatch>,
) -> Result<Response> {
    let u = u.resolve(&c);
    Ok(Json(chat.update_member(&c, g, u, b).await?).into_response())
}

pub async fn kick(State(chat): S, Auth(c): Auth, Path((g, u)): Path<(Id, Id)>) -> Result<Response> {
    chat.kick(&c, g, u).await?;
    Ok(no_content())
}

#[derive(Deserialize, Default)]
pub struct BanBody {
    reason: Option<String>,
}

pub async fn ban(
    State(chat): S,
    Auth(c): Auth,
    Path((g, u)): Path<(Id, Id)>,
    OptionalBody(b): OptionalBody<BanBody>,
) -> Result<Response> {
    chat.ban(&c, g, u, b.reason).await?;
    Ok(no_content())
}

pub async fn unban(State(chat): S, Auth(c): Auth, Path((g, u)): Path<(Id, Id)>) -> Result<Response> {
    chat.unban(&c, g, u).await?;
    Ok(no_content())
}

pub async fn bans(State(chat): S, Auth(c): Auth, Path(g): Path<Id>) -> Result<Response> {
    Ok(Json(chat.bans(&c, g).await?).into_response())
}

pub async fn audit_log(
    State(chat): S,
    Auth(c): Auth,
    Path(g): Path<Id>,
    Query(q): Query<crate::service::audit::AuditLogParams>,
) -> Result<Response> {
    Ok(Json(chat.audit_log(&c, g, q).await?).into_response())
}

pub async fn roles(State(chat): S, Auth(c): Auth, Path(g): Path<Id>) -> Result<Response> {
    Ok(Json(chat.roles(&c, g).await?).into_response())
}

pub async fn create_role(
    State(chat): S,
    Auth(c): Auth,
    Path(g): Path<Id>,
    Body(b): Body<RoleBody>,
) -> Result<Response> {
    Ok(created(chat.create_role(&c, g, b).await?))
}

pub async fn update_role(
    State(chat): S,
    Auth(c): Auth,
    Path((g, r)): Path<(Id, Id)>,
    Body(b): Body<RoleBody>,
) -> Result<Response> {
    Ok(Json(chat.update_role(&c, g, r, b).await?).into_response())
}

pub async fn delete_role(State(chat): S, Auth(c): Auth, Path((g, r)): Path<(Id, Id)>) -> Result<Response> {
    chat.delete_role(&c, g, r).await?;
    Ok(no_content())
}

// ---- messages

#[derive(Deserialize)]
pub struct HistoryQuery {
    pub before: Option<Id>,
    pub after: Option<Id>,
    pub around: Option<Id>,
    pub limit: Option<u32>,
}

impl HistoryQuery {
    /// Where the page starts: at most one of `before`, `after`, `around`.
    pub fn anchor(&self) -> Result<HistoryAnchor> {
        match (self.before, self.after, self.around) {
            (None, None, None) => Ok(HistoryAnchor::Latest),
            (Some(b), None, None) => Ok(HistoryAnchor::Before(b)),
            (None, Some(a), None) => Ok(HistoryAnchor::After(a)),
            (None, None, Some(a)) => Ok(HistoryAnchor::Around(a)),
            _ => Err(Error::bad_request("invalid_query", "use at most one of before, after, around")),
        }
    }
}

pub async fn history(
    State(chat): S,
    Auth(c): Auth,
    Path(ch): Path<Id>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response> {
    let anchor = q.anchor()?;
    Ok(Json(chat.history(&c, ch, anchor, q.limit).await?).into_response())
}

pub async fn get_message(State(chat): S, Auth(c): Auth, Path((ch, m)): Path<(Id, Id)>) -> Result<Response> {
    Ok(Json(chat.get_message(&c, ch, m).await?).into_response())
}

/// JSON, or `multipart/form-data` with files (`http/upload.rs`). The route has no body limit of its
/// own; each branch sets its own (the JSON limit, or the caller's upload budget).
pub async fn send_message(State(chat): S, Auth(c): Auth, Path(ch): Path<Id>, req: Request) -> Result<Response> {
    let (message, created_now) = if super::upload::is_multipart(&req) {
        super::upload::send_with_files(&chat, &c, ch, req).await?
    } else {
        let limit = chat.config.max_body_bytes;
        let req = req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, limit)));
        let Body(b) = Body::<NewMessage>::from_request(req, &()).await?;
        chat.send_message(&c, ch, b).await?
    };
    // A retried send answers like the first one did.
    let _ = created_now;
    Ok(created(message))
}

#[derive(Deserialize)]
pub struct ContentBody {
    content: String,
}

pub async fn edit_message(
    State(chat): S,
    Auth(c): Auth,
    Path((ch, m)): Path<(Id, Id)>,
    Body(b): Body<ContentBody>,
) -> Result<Response> {
    Ok(Json(chat.edit_message(&c, ch, m, &b.content).await?).into_response())
}

pub async fn delete_message(State(chat): S, Auth(c): Auth, Path((ch, m)): Path<(Id, Id)>) -> Result<Response> {
    chat.delete_message(&c, ch, m).await?;
    Ok(no_content())
}

pub async fn ack(State(chat): S, Auth(c): Auth, Path((ch, m)): Path<(Id, Id)>) -> Result<Response> {
    chat.ack(&c, ch, m).await?;
    Ok(no_content())
}

pub async fn add_reaction(State(chat): S, Auth(c): Auth, Path((ch, m, e)): Path<(Id, Id, String)>) -> Result<Response> {
    chat.add_reaction(&c, ch, m, &e).await?;
    Ok(no_content())
}

pub async fn remove_reaction(
    State(chat): S,
    Auth(c): Auth,
    Path((ch, m, e)): Path<(Id, Id, String)>,
) -> Result<Response> {
    chat.remove_reaction(&c, ch, m, &e, None).await?;
    Ok(no_content())
}

pub async fn remove_reaction_of(
    State(chat): S,
    Auth(c): Auth,
    Path((ch, m, e, u)): Path<(Id, Id, String, UserRef)>,
) -> Result<Response> {
    let u = u.resolve(&c);
    chat.remove_reaction(&c, ch, m, &e, Some(u)).await?;
    Ok(no_content())
}

pub async fn pins(State(chat): S, Auth(c): Auth, Path(ch): Path<Id>) -> Result<Response> {
    Ok(Json(chat.pins(&c, ch).await?).into_response())
}

pub async fn pin(State(chat): S, Auth(c): Auth, Path((ch, m)): Path<(Id, Id)>) -> Result<Response> {
    chat.set_pinned(&c, ch, m, true).await?;
    Ok(no_content())
}

pub async fn unpin(State(chat): S, Auth(c): Auth, Path((ch, m)): Path<(Id, Id)>) -> Result<Response> {
    chat.set_pinned(&c, ch, m, false).await?;
    Ok(no_content())
}

pub async fn typing(State(chat): S, Auth(c): Auth, Path(ch): Path<Id>) -> Result<Response> {
    chat.typing(&c, ch).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
pub struct SearchQuery {
    pub q: String,
    pub limit: Option<u32>,
}

pub async fn search(
    State(chat): S,
    Auth(c): Auth,
    Path(g): Path<Id>,
    Query(q): Query<SearchQuery>,
) -> Result<Response> {
    Ok(Json(chat.search(&c, g, &q.q, q.limit).await?).into_response())
}

pub async fn grant_voice(State(chat): S, Auth(c): Auth, Path(ch): Path<Id>) -> Result<Response> {
    Ok(Json(chat.grant_voice(&c, ch).await?).into_response())
}
