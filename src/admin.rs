//! The operator dashboard: `GET /admin` (the page) and `GET /api/v1/admin/stats` (its data).
//!
//! Both answer 404 to anyone but an instance admin — the first registered user or a user named in
//! the `admins` setting — so the dashboard's existence does not leak. The page is a navigation and
//! carries no `Authorization` header, so it is authorised by the `chorus_token` cookie the web
//! client sets (Path=/admin, SameSite=Strict); the stats API takes the usual bearer token.
//!
//! Stats are read back from the Prometheus registry, so the dashboard and `/metrics` can never
//! disagree; counters are cumulative and the page turns them into rates.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chat::http::extract::ClientIp;
use chat::{Chat, Error};
use prometheus::Registry;
use prometheus::proto::{MetricFamily, MetricType};
use serde::Serialize;

#[derive(Clone)]
pub struct Admin {
    pub chat: Arc<Chat>,
    /// None on a `--role chat` node (no rooms here).
    pub voice: Option<Arc<signaling::Signaling>>,
    pub registry: Registry,
    /// Lower-cased usernames from the configuration.
    pub admins: Arc<Vec<String>>,
    pub started: Instant,
    pub node_id: u16,
    /// The cluster's Redis, when this node is in a cluster: the stats list every live node.
    pub cluster: Option<redis::aio::ConnectionManager>,
    /// Misconfigurations shown at the top of the dashboard.
    pub warnings: Arc<Vec<String>>,
    /// Who may register (`--registration`), shown on the dashboard.
    pub registration: chat::operator::Registration,
}

pub fn router(state: Admin) -> Router {
    Router::new()
        .route("/admin", get(page))
        .route("/api/v1/admin/stats", get(stats))
        // A wrong method is the contract's JSON error, not axum's empty 405.
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .with_state(state)
}

impl Admin {
    /// The caller behind `token` if it is an instance admin; `NotFound` otherwise (also for a bad token).
    async fn admin(&self, token: Option<&str>, ip: IpAddr) -> Result<chat::model::User, Error> {
        let caller = match self.chat.authorize(token.unwrap_or_default(), ip).await {
            Ok(c) => c,
            Err(Error::RateLimited(after)) => return Err(Error::RateLimited(after)),
            Err(_) => return Err(Error::NotFound("route")),
        };
        let user = caller.user;
        if self.admins.contains(&user.username.to_lowercase()) {
            return Ok(user);
        }
        // Made admin with `chorus admin user set-admin`.
        if self.chat.store().user(user.id).await?.is_some_and(|r| r.admin) {
            return Ok(user);
        }
        match self.chat.store().first_user().await? {
            Some(first) if first.id == user.id => Ok(user),
            _ => Err(Error::NotFound("route")),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).map(|_| v[7..].trim())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn page(State(s): State<Admin>, ClientIp(ip): ClientIp, headers: HeaderMap) -> Response {
    match s.admin(cookie(&headers, "chorus_token"), ip).await {
        Ok(_) => crate::web::file("admin.html", "no-store"),
        Err(e) => e.into_response(),
    }
}

async fn stats(State(s): State<Admin>, ClientIp(ip): ClientIp, headers: HeaderMap) -> Response {
    if let Err(e) = s.admin(bearer(&headers), ip).await {
        return e.into_response();
    }
    // Workers answer between datagrams; a busy one is skipped rather than waited for.
    let rooms = match s.voice.clone() {
        Some(link) => {
            tokio::task::spawn_blocking(move || link.sfu().rooms(Duration::from_millis(250))).await.unwrap_or_default()
        }
        None => Vec::new(),
    };
    let user_ids: Vec<chat::Id> =
        rooms.iter().flat_map(|r| r.participants.iter().map(|p| chat::Id::from_raw(p.user_id))).collect();
    let names: HashMap<u64, String> = match s.chat.store().users(&user_ids).await {
        Ok(users) => users.into_iter().map(|u| (u.id.get(), u.username)).collect(),
        Err(e) => return Error::from(e).into_response(),
    };
    let cluster = match &s.cluster {
        Some(conn) => match crate::cluster::nodes::live_nodes(conn).await {
            Ok(nodes) => Some(ClusterStats {
                totals: ClusterTotals {
                    nodes: nodes.len(),
                    serving: nodes.iter().filter(|n| n.state == "serving").count(),
                    connections: nodes.iter().map(|n| n.connections).sum(),
                    rooms: nodes.iter().map(|n| n.rooms).sum(),
                    participants: nodes.iter().map(|n| n.participants).sum(),
                },
                nodes,
            }),
            Err(e) => return Error::Unavailable(format!("the cluster's Redis does not answer: {e}")).into_response(),
        },
        None => None,
    };
    let families = s.registry.gather();
    let m = Metrics(&families);
    let body = Stats {
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        uptime_secs: s.started.elapsed().as_secs(),
        node_id: s.node_id,
        warnings: s.warnings.to_vec(),
        registration: s.registration,
        process: ProcessStats {
            cpu_seconds_total: precise_cpu_seconds().unwrap_or_else(|| m.sum("process_cpu_seconds_total")),
            resident_memory_bytes: m.sum("process_resident_memory_bytes"),
            open_fds: m.sum("process_open_fds"),
        },
        gateway: GatewayStats {
            connections: m.sum("chorus_gateway_connections"),
            dispatches_total: m.sum("chorus_gateway_dispatches_total"),
            slow_consumers_total: m.sum("chorus_gateway_slow_consumers_total"),
        },
        chat: ChatStats { messages_total: m.sum("chorus_chat_messages_total") },
        voice: VoiceStats {
            sessions: m.sum("chorus_voice_sessions"),
            joins_total: m.sum("chorus_voice_joins_total"),
            join_latency_count: m.histograms("chorus_voice_join_latency_seconds", "").map(|h| h.1).sum(),
            join_latency_sum_seconds: m.histograms("chorus_voice_join_latency_seconds", "").map(|h| h.2).sum(),
        },
        sfu: SfuStats {
            rooms: m.sum("chorus_sfu_rooms"),
            participants: m.sum("chorus_sfu_participants"),
            tracks: m.sum("chorus_sfu_tracks"),
            packets_in_total: m.sum("chorus_sfu_packets_in_total"),
            packets_out_total: m.sum("chorus_sfu_packets_out_total"),
            bytes_in_total: m.sum("chorus_sfu_bytes_in_total"),
            bytes_out_total: m.sum("chorus_sfu_bytes_out_total"),
            forwarded_total: m.sum("chorus_sfu_forwarded_frames_total"),
            nacks_total: m.sum("chorus_sfu_nacks_total"),
            keyframe_requests_total: m.sum("chorus_sfu_keyframe_requests_total"),
        },
        store: StoreStats {
            backend: s.chat.store().backend(),
            ops: m
                .histograms("chorus_store_op_duration_seconds", "op")
                .map(|(op, count, sum_seconds)| StoreOp { op, count, sum_seconds })
                .collect(),
        },
        rooms: rooms
            .into_iter()
            .map(|r| RoomStats {
                room_id: r.room.to_string(),
                worker: r.worker,
                participants: r
                    .participants
                    .into_iter()
                    .map(|p| ParticipantStats {
                        participant_id: p.id.0.to_string(),
                        user_id: p.user_id.to_string(),
                        username: names.get(&p.user_id).cloned(),
                        published_tracks: p.published_tracks,
                        rtt_ms: p.quality.rtt_ms,
                        loss_in: p.quality.loss_in,
                        loss_out: p.quality.loss_out,
                        jitter_ms: p.quality.jitter_ms,
                        bwe_bps: p.quality.bwe_bps,
                        bwe_target_bps: p.quality.bwe_target_bps,
                        subscriptions: p
                            .subscriptions
                            .into_iter()
                            .map(|s| SubscriptionStats {
                                track_id: s.track.0.to_string(),
                                layer: s.layer.map(layer_name),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        cluster,
    };
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    res
}

/// User + system CPU time of this process at /proc's 10 ms resolution (the Prometheus process collector
/// rounds down to whole seconds, too coarse for a one-second chart).
fn precise_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces; fields after it are plain numbers.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // /proc reports in USER_HZ, which Linux fixes at 100 for user space.
    Some((utime + stime) / 100.0)
}

fn layer_name(l: sfu::Layer) -> &'static str {
    match l {
        sfu::Layer::Q => "q",
        sfu::Layer::H => "h",
        sfu::Layer::F => "f",
    }
}

/// Reads values back out of a gathered registry.
pub(crate) struct Metrics<'a>(pub(crate) &'a [MetricFamily]);

impl Metrics<'_> {
    fn family(&self, name: &str) -> Option<&MetricFamily> {
        self.0.iter().find(|f| f.name() == name)
    }

    /// Sum of a counter or gauge family over all its label sets (0 when absent).
    pub(crate) fn sum(&self, name: &str) -> f64 {
        let Some(f) = self.family(name) else { return 0.0 };
        f.get_metric()
            .iter()
            .map(|m| match f.get_field_type() {
                MetricType::COUNTER => m.get_counter().get_value(),
                MetricType::GAUGE => m.get_gauge().get_value(),
                _ => 0.0,
            })
            .sum()
    }

    /// `(value of label `key`, sample count, sample sum)` of each series of a histogram family.
    fn histograms<'k>(&self, name: &str, key: &'k str) -> impl Iterator<Item = (String, u64, f64)> + use<'_, 'k> {
        self.family(name).into_iter().flat_map(|f| f.get_metric()).map(move |m| {
            let label =
                m.get_label().iter().find(|l| l.name() == key).map(|l| l.value().to_string()).unwrap_or_default();
            let h = m.get_histogram();
            (label, h.get_sample_count(), h.get_sample_sum())
        })
    }
}

#[derive(Serialize)]
struct Stats {
    time: String,
    uptime_secs: u64,
    node_id: u16,
    warnings: Vec<String>,
    registration: chat::operator::Registration,
    process: ProcessStats,
    gateway: GatewayStats,
    chat: ChatStats,
    voice: VoiceStats,
    sfu: SfuStats,
    store: StoreStats,
    rooms: Vec<RoomStats>,
    /// Every live node and the cluster's totals; absent on a single node.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterStats>,
}

#[derive(Serialize)]
struct ClusterStats {
    nodes: Vec<crate::cluster::NodeRecord>,
    totals: ClusterTotals,
}

#[derive(Serialize)]
struct ClusterTotals {
    nodes: usize,
    serving: usize,
    connections: i64,
    rooms: i64,
    participants: i64,
}

#[derive(Serialize)]
struct ProcessStats {
    cpu_seconds_total: f64,
    resident_memory_bytes: f64,
    open_fds: f64,
}

#[derive(Serialize)]
struct GatewayStats {
    connections: f64,
    dispatches_total: f64,
    slow_consumers_total: f64,
}

#[derive(Serialize)]
struct ChatStats {
    messages_total: f64,
}

#[derive(Serialize)]
struct VoiceStats {
    sessions: f64,
    joins_total: f64,
    join_latency_count: u64,
    join_latency_sum_seconds: f64,
}

#[derive(Serialize)]
struct SfuStats {
    rooms: f64,
    participants: f64,
    tracks: f64,
    packets_in_total: f64,
    packets_out_total: f64,
    bytes_in_total: f64,
    bytes_out_total: f64,
    forwarded_total: f64,
    nacks_total: f64,
    keyframe_requests_total: f64,
}

#[derive(Serialize)]
struct StoreStats {
    backend: &'static str,
    ops: Vec<StoreOp>,
}

#[derive(Serialize)]
struct StoreOp {
    op: String,
    count: u64,
    sum_seconds: f64,
}

#[derive(Serialize)]
struct RoomStats {
    room_id: String,
    worker: usize,
    participants: Vec<ParticipantStats>,
}

#[derive(Serialize)]
struct ParticipantStats {
    participant_id: String,
    user_id: String,
    username: Option<String>,
    published_tracks: usize,
    rtt_ms: Option<f32>,
    loss_in: Option<f32>,
    loss_out: Option<f32>,
    jitter_ms: Option<f32>,
    bwe_bps: Option<u64>,
    bwe_target_bps: Option<u64>,
    subscriptions: Vec<SubscriptionStats>,
}

#[derive(Serialize)]
struct SubscriptionStats {
    track_id: String,
    layer: Option<&'static str>,
}
