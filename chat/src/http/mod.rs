//! REST routes under `/api/v1` and the gateway route. Handlers only extract and call the service.

pub mod client_addr;
pub mod extract;
pub(crate) mod handlers;
mod upload;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post, put};

use crate::Chat;
use crate::error::Error;
use handlers::*;

pub fn router(chat: Arc<Chat>) -> Router {
    let api = Router::new()
        .route("/instance", get(instance))
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/mfa/totp", post(login_mfa))
        .route("/users/@me", get(me).patch(update_me).delete(delete_me))
        .route("/users/@me/mfa/totp/setup", post(totp_setup))
        .route("/users/@me/mfa/totp/enable", post(totp_enable))
        .route("/users/@me/mfa/totp/disable", post(totp_disable))
        .route("/users/@me/password", post(change_password))
        .route("/users/@me/sessions", get(sessions))
        .route("/users/@me/sessions/{session_id}", delete(revoke_session))
        .route("/users/@me/guilds", get(my_guilds))
        .route("/users/@me/guilds/{guild_id}", delete(leave_guild))
        .route("/users/@me/channels", get(my_dms).post(open_dm))
        .route("/users/{user_id}", get(get_user))
        .route("/guilds", post(create_guild))
        .route("/guilds/{guild_id}", get(get_guild).patch(update_guild).delete(delete_guild))
        .route("/guilds/{guild_id}/channels", get(guild_channels).post(create_channel))
        .route("/guilds/{guild_id}/invites", get(invites).post(create_invite))
        .route("/guilds/{guild_id}/members", get(members))
        .route("/guilds/{guild_id}/members/{user_id}", get(member).patch(update_member).delete(kick))
        .route("/guilds/{guild_id}/bans", get(bans))
        .route("/guilds/{guild_id}/audit-logs", get(audit_log))
        .route("/guilds/{guild_id}/bans/{user_id}", put(ban).delete(unban))
        .route("/guilds/{guild_id}/roles", get(roles).post(create_role))
        .route("/guilds/{guild_id}/roles/{role_id}", axum::routing::patch(update_role).delete(delete_role))
        .route("/guilds/{guild_id}/messages/search", get(search))
        .route("/channels/{channel_id}", get(get_channel).patch(update_channel).delete(delete_channel))
        .route("/channels/{channel_id}/permissions/{target_id}", put(put_overwrite).delete(delete_overwrite))
        .route("/channels/{channel_id}/messages", get(history).post(send_message).layer(DefaultBodyLimit::disable()))
        .route("/attachments/{channel_id}/{message_id}/{attachment_id}/{filename}", get(attachment))
        .route("/link-previews/image", get(preview_image))
        .route(
            "/channels/{channel_id}/messages/{message_id}",
            get(get_message).patch(edit_message).delete(delete_message),
        )
        .route("/channels/{channel_id}/messages/{message_id}/ack", post(ack))
        .route(
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}",
            put(add_reaction).delete(remove_reaction),
        )
        .route("/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}", delete(remove_reaction_of))
        .route("/channels/{channel_id}/pins", get(pins))
        .route("/channels/{channel_id}/pins/{message_id}", put(pin).delete(unpin))
        .route("/channels/{channel_id}/typing", post(typing))
        .route("/channels/{channel_id}/voice", post(grant_voice))
        .route("/invites/{code}", get(preview_invite).post(join_invite).delete(revoke_invite))
        .fallback(|| async { Error::NotFound("route") })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .route_layer(axum::middleware::from_fn_with_state(chat.clone(), measure));
    Router::new()
        .nest("/api/v1", api)
        .route("/gateway", get(crate::gateway::socket::handler))
        // Only for the routes above (`/gateway`): a wrong method is the JSON error, not an empty 405.
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(chat.config.max_body_bytes))
        .with_state(chat)
}

/// Counts and times every routed REST request. Runs as a route layer, so the label is the matched
/// route template (a bounded set), never the raw path with its ids.
async fn measure(State(chat): State<Arc<Chat>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let method = req.method().clone();
    let start = std::time::Instant::now();
    let res = next.run(req).await;
    let m = &chat.metrics;
    m.http_duration.with_label_values(&[method.as_str()]).observe(start.elapsed().as_secs_f64());
    let class = match res.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    m.http_requests.with_label_values(&[&route, method.as_str(), class]).inc();
    res
}
