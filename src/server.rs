//! Composes the planes into one HTTP server: chat's REST API and gateway, voice signaling, the
//! web client, health and metrics; runs it until SIGINT/SIGTERM, then shuts down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chat::{Chat, ChatConfig};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;

use crate::config::Config;

#[derive(Clone)]
struct AppState {
    chat: Arc<Chat>,
    registry: Registry,
    /// Misconfigurations an operator must see (also in the log and on `/admin`).
    warnings: Arc<Vec<String>>,
    /// The cluster's Redis, which must answer for the node to be ready.
    redis: Option<redis::aio::ConnectionManager>,
    /// This node in the cluster: a draining node is not ready (load balancers stop sending to it).
    membership: Option<Arc<crate::cluster::nodes::Membership>>,
}

/// A running Chorus: the chat plane (for shutdown) and the composed router.
pub struct App {
    pub chat: Arc<Chat>,
    pub router: Router,
    /// This node's place in the cluster, when it is in one.
    pub membership: Option<Arc<crate::cluster::nodes::Membership>>,
    /// Voice, whose calls a draining cluster node lets finish.
    /// None on a `--role chat` node.
    pub voice: Option<Arc<signaling::Signaling>>,
    /// The embedded TURN server, which runs as long as this is held.
    pub turn: Option<crate::turn::Embedded>,
}

/// `turn_tls`: the certificate configuration for TURN over TLS, when HTTPS is served here.
pub async fn build(config: &Config, turn_tls: Option<Arc<rustls::ServerConfig>>) -> Result<App> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;

    let store = chat::store::open(&config.store, &config.data_dir).await.context("opening the store")?;
    // In a cluster the snowflake node id is claimed in Redis before anything can mint an id.
    let cluster = match &config.cluster {
        Some(url) => {
            let conn = crate::cluster::connect(url).await?;
            let token = format!("{:016x}", rand::random::<u64>());
            let wanted = config.node_id_explicit.then_some(config.node_id);
            let node_id = crate::cluster::nodes::claim_node_id(&conn, wanted, &token).await?;
            tracing::info!("cluster: joined over Redis {} as node {node_id}", crate::cluster::redact(url));
            Some((url.clone(), conn, token, node_id))
        }
        None => None,
    };
    let node_id = cluster.as_ref().map_or(config.node_id, |c| c.3);
    let secret = crate::voice::load_secret(config.voice_secret.as_deref(), &config.data_dir)?;
    let tokens = Arc::new(signaling::token::VoiceTokens::new(&secret));
    let grants = Arc::new(crate::voice::TokenGrants {
        tokens: tokens.clone(),
        endpoint: config.voice_endpoint(),
        ttl: Duration::from_secs(config.voice_token_ttl),
        cluster: cluster.as_ref().map(|c| c.1.clone()),
    });
    let mut chat_config = ChatConfig {
        node_id,
        heartbeat_interval: Duration::from_millis(config.heartbeat_ms),
        registration: config.registration,
        uploads: config.upload_limits,
        previews: config.previews.clone(),
        server_key: chat::credentials::ServerKey::derive(&secret, "chorus tickets and preview urls v1"),
        ..ChatConfig::default()
    };
    if config.no_rate_limits {
        chat_config.limits = chat::ratelimit::RateLimitConfig::unlimited();
    }
    chat_config.hub.stream_positions = cluster.is_some();
    let chat = Chat::new(store, grants, chat_config, &registry);
    let storage = chat::attachments::Storage::open(&config.upload_store, &config.data_dir, &secret)
        .context("opening the attachment storage (--upload-store)")?;
    if cluster.is_some() && storage.backend() == "local" {
        tracing::warn!(
            "attachments are stored on this node's disk (--upload-store local): other nodes cannot serve them; \
             give every node the same S3-compatible store"
        );
    }
    let temp_dir = config.data_dir.join("tmp");
    std::fs::create_dir_all(&temp_dir).with_context(|| format!("creating {}", temp_dir.display()))?;
    // Uploads half-received when the process last died.
    for leftover in std::fs::read_dir(&temp_dir).into_iter().flatten().flatten() {
        let _ = std::fs::remove_file(leftover.path());
    }
    chat.attach_uploads(chat::service::attachments::Uploads::new(Arc::new(storage), temp_dir));
    if let Some((url, cluster_conn, ..)) = &cluster {
        let metrics = crate::cluster::bus::BusMetrics::new(&registry)?;
        let bus = crate::cluster::bus::RedisBus::start(url, &chat, metrics).await?;
        chat.attach_bus(bus);
        chat.share_rate_limits(Arc::new(crate::cluster::ratelimit::RedisLimiter::new(cluster_conn.clone())));
        chat.attach_presence(crate::cluster::presence::RedisPresence::new(cluster_conn.clone(), node_id));
        chat.attach_voice_directory(crate::cluster::voice::RedisVoice::new(cluster_conn.clone(), node_id));
    }

    // Embedded TURN: its listeners first, so the URLs in `joined` carry their ports; what it may
    // relay to is set once the SFU has bound.
    // The TURN server's open relay addresses, which the SFU reads to count relayed joins.
    let relay_sources = sfu::RelaySources::default();
    let embedded_turn = match &config.embedded_turn {
        Some(e) => Some(crate::turn::start(config, e, turn_tls, relay_sources.clone(), &registry).await?),
        None => None,
    };
    let signaling_config = signaling::SignalingConfig {
        public_endpoint: config.voice_endpoint(),
        ice_servers: Vec::new(),
        turn: crate::turn::ice_turn(config, embedded_turn.as_ref()).filter(|t| !t.urls.is_empty()),
        sfu: sfu::SfuConfig {
            bind_ip: config.media.bind,
            udp_port_base: config.udp_port_base,
            public_ips: config.media.advertised.clone(),
            workers: config.sfu_workers,
            tcp_port: config.rtc_tcp_port,
            relay_sources,
            ..sfu::SfuConfig::default()
        },
        resume_window: None,
        // Generous for a household or office behind one NAT; a flood from one address gets 429.
        connect_limit: (!config.no_rate_limits).then_some(signaling::ConnectLimit { per_second: 5, burst: 50 }),
        node_id: cluster.as_ref().map(|c| c.3),
    };
    // `--role chat` runs no SFU: its voice grants name the nodes that do.
    let voice = if config.role.serves_voice() {
        let events = Arc::new(crate::voice::ChatVoiceStates(Arc::downgrade(&chat)));
        let voice = signaling::Signaling::in_process(signaling_config, &secret, events, &registry)
            .context("starting the SFU and voice signaling")?;
        crate::voice::spawn_account_check(Arc::downgrade(&chat), Arc::downgrade(&voice));
        crate::voice::spawn_moderation(&chat, Arc::downgrade(&voice));
        if let Some(turn) = &embedded_turn {
            crate::turn::allow_sfu(turn, &voice.sfu().udp_addrs(), &config.media.advertised);
        }
        let udp: Vec<String> = voice.sfu().udp_addrs().iter().map(|a| a.to_string()).collect();
        let tcp = voice.sfu().tcp_addr().map_or("off".to_string(), |a| a.to_string());
        tracing::info!(
            "media: UDP {} and ICE-TCP {tcp} (bound to {}), advertising {} (chosen by {})",
            udp.join(", "),
            config.media.bind,
            crate::media_addr::join(&config.media.advertised),
            config.media.source
        );
        Some(voice)
    } else {
        tracing::info!("media: none on this node (--role chat); voice rooms go to the cluster's SFU nodes");
        None
    };
    let media_warning = config.media.warning.iter().filter(|_| voice.is_some()).cloned();
    let warnings: Arc<Vec<String>> = Arc::new(media_warning.collect());
    for w in warnings.iter() {
        tracing::warn!("{w}");
    }

    let membership = match cluster {
        Some((_, conn, token, node_id)) => {
            let info = crate::cluster::NodeInfo {
                node_id,
                url: config.public_url.clone(),
                voice_endpoint: config.voice_endpoint(),
                role: config.role.as_str(),
                version: env!("CARGO_PKG_VERSION"),
                started_at_ms: chrono::Utc::now().timestamp_millis(),
            };
            let reg = registry.clone();
            let load = Box::new(move || {
                let families = reg.gather();
                let m = crate::admin::Metrics(&families);
                crate::cluster::nodes::Load {
                    connections: m.sum("chorus_gateway_connections") as i64,
                    rooms: m.sum("chorus_sfu_rooms") as i64,
                    participants: m.sum("chorus_sfu_participants") as i64,
                }
            });
            let membership = crate::cluster::nodes::Membership::new(conn.clone(), info, token.clone(), load);
            crate::cluster::presence::forget_node(&conn, node_id, &chat)
                .await
                .context("clearing this node's old presence")?;
            crate::cluster::voice::forget_node(&conn, node_id, &chat)
                .await
                .context("clearing this node's old voice calls")?;
            membership.beat().await.context("registering this node in the cluster")?;
            let failures = prometheus::IntCounter::new(
                "chorus_cluster_heartbeat_failures_total",
                "Heartbeats of this node that Redis did not take",
            )?;
            registry.register(Box::new(failures.clone()))?;
            crate::cluster::nodes::spawn_heartbeat(membership.clone(), failures);
            if let Some(voice) = &voice {
                spawn_room_upkeep(conn.clone(), node_id, voice.clone());
            }
            crate::cluster::presence::spawn_sweeper(conn.clone(), token.clone(), Arc::downgrade(&chat));
            Some((membership, conn))
        }
        None => None,
    };
    let redis = membership.as_ref().map(|(_, conn)| conn.clone());

    let admin = crate::admin::Admin {
        chat: chat.clone(),
        voice: voice.clone(),
        registry: registry.clone(),
        admins: Arc::new(config.admins.clone()),
        started: std::time::Instant::now(),
        node_id,
        cluster: redis.clone(),
        warnings: warnings.clone(),
        registration: config.registration,
    };
    let state = AppState {
        chat: chat.clone(),
        registry: registry.clone(),
        warnings,
        redis,
        membership: membership.as_ref().map(|(m, _)| m.clone()),
    };
    let ops = Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
        .method_not_allowed_fallback(|| async { chat::Error::MethodNotAllowed })
        .with_state(state);
    let mut router = Router::new().merge(ops);
    if config.role.serves_chat() {
        router = router.merge(chat.router()).merge(crate::web::router()).merge(crate::admin::router(admin));
    }
    if let Some(voice) = &voice {
        router = router.merge(signaling::router(voice.clone()));
    }
    let router = router
        .fallback(|| async {
            let body = serde_json::json!({"code": "not_found", "message": "no such route"});
            (StatusCode::NOT_FOUND, axum::Json(body))
        })
        // Text answers (the client's modules, JSON) shrink several-fold over a real link; an upgrade's
        // empty 101 and small bodies are left alone by the layer's default predicate. Attachments
        // (they carry Content-Disposition) are not: their length and ranges must stay (download
        // progress, resume), and most are compressed already.
        .layer(tower_http::compression::CompressionLayer::new().compress_when(
            tower_http::compression::Predicate::and(
                tower_http::compression::predicate::DefaultPredicate::new(),
                |_: StatusCode, _: axum::http::Version, h: &axum::http::HeaderMap, _: &axum::http::Extensions| {
                    !h.contains_key(header::CONTENT_DISPOSITION)
                },
            ),
        ));
    // Browsers that once saw HTTPS here never try plain HTTP again (a proxy in front sets its own).
    let router = if config.tls.is_some() {
        router.layer(tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            header::HeaderValue::from_static(crate::tls::HSTS),
        ))
    } else {
        router
    };
    // Outermost, so that rate limits and logs already see the client behind a trusted proxy.
    let router = if config.trusted_proxies.is_empty() {
        router
    } else {
        let proxies = Arc::new(config.trusted_proxies.clone());
        router.layer(axum::middleware::from_fn_with_state(proxies, chat::http::client_addr::layer))
    };
    Ok(App { chat, router, membership: membership.map(|(m, _)| m), voice, turn: embedded_turn })
}

/// Every 5 s: gives back this node's placed voice rooms that nobody is in, so placement sees its real
/// load, and ends the calls of rooms that were placed elsewhere while this node was taken for dead.
fn spawn_room_upkeep(conn: redis::aio::ConnectionManager, node_id: u16, voice: Arc<signaling::Signaling>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let link = voice.clone();
            let Ok(rooms) = tokio::task::spawn_blocking(move || link.sfu().rooms(Duration::from_millis(250))).await
            else {
                continue;
            };
            let active: Vec<u64> = rooms.iter().filter(|r| !r.participants.is_empty()).map(|r| r.room).collect();
            if let Err(e) = crate::cluster::rooms::release_idle(&conn, node_id, &active).await {
                tracing::debug!("cluster: could not release idle rooms: {e}");
            }
            match crate::cluster::rooms::claim_or_lost(&conn, node_id, &active).await {
                Ok(lost) => {
                    for channel in lost {
                        tracing::warn!(
                            channel,
                            "cluster: this room was placed on another node meanwhile; ending its calls here"
                        );
                        voice.close_room(channel, "room_moved", "this call moved to another server; join again");
                    }
                }
                Err(e) => tracing::debug!("cluster: could not check room ownership: {e}"),
            }
        }
    });
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.membership.as_ref().is_some_and(|m| m.is_draining()) {
        let body =
            serde_json::json!({"code": "draining", "message": "this node is shutting down; its calls are finishing"});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body));
    }
    if let Some(redis) = &s.redis
        && !matches!(tokio::time::timeout(Duration::from_secs(2), crate::cluster::ping(redis)).await, Ok(true))
    {
        let body = serde_json::json!({"code": "cluster_unavailable", "message": "the cluster's Redis does not answer"});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body));
    }
    match tokio::time::timeout(Duration::from_secs(2), s.chat.store().ping()).await {
        // Ready, but an operator probing it learns what will fail for users.
        Ok(Ok(())) if !s.warnings.is_empty() => {
            (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready", "warnings": *s.warnings})))
        }
        Ok(Ok(())) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready"}))),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"code": "store_unavailable", "message": "the store does not answer"})),
        ),
    }
}

/// The OpenAPI document of every HTTP route (`scripts/check_openapi.py` keeps it in step with the routers).
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../docs/openapi.json"))
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&s.registry.gather(), &mut buf) {
        return (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], e.to_string().into_bytes());
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], buf)
}

/// How long a draining cluster node lets its voice calls run before it closes them.
const CLUSTER_DRAIN: Duration = Duration::from_secs(60);

/// A draining cluster node keeps serving its voice calls until nobody is left in them or
/// [`CLUSTER_DRAIN`] has passed.
async fn wait_for_calls_to_end(voice: &Arc<signaling::Signaling>) {
    let deadline = tokio::time::Instant::now() + CLUSTER_DRAIN;
    loop {
        let link = voice.clone();
        let in_calls = tokio::task::spawn_blocking(move || {
            link.sfu().rooms(Duration::from_millis(250)).iter().map(|r| r.participants.len()).sum::<usize>()
        })
        .await
        .unwrap_or(0);
        if in_calls == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("drain: {in_calls} still in voice after {CLUSTER_DRAIN:?}; closing their calls");
            return;
        }
        tracing::info!("drain: waiting for {in_calls} in voice to leave");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Serves until a shutdown signal; then tells gateway clients to reconnect, stops accepting,
/// waits briefly for open requests and flushes the store.
pub async fn run(mut config: Config) -> Result<()> {
    if config.stun_server.is_some() {
        config = tokio::task::spawn_blocking(move || {
            config.probe_stun();
            config
        })
        .await?;
    }
    // A certificate that does not load stops the start before anything else is opened.
    let tls = match &config.tls {
        Some(tls) => Some((tls, crate::tls::Serving::start(&tls.certs)?)),
        None => None,
    };
    let turn_tls = match &tls {
        Some((_, serving)) => Some(serving.turn_config()?),
        None => None,
    };
    let app = build(&config, turn_tls).await?;
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "Chorus is running: open {}://{addr}/ (store: {}, data: {})",
        if tls.is_some() { "https" } else { "http" },
        app.chat.store().backend(),
        config.data_dir.display()
    );

    let chat = app.chat.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let service = app.router.into_make_service_with_connect_info::<SocketAddr>();
    // The embedded TURN server runs until this returns.
    let _turn = app.turn;
    let mut servers = Vec::new();
    match tls {
        None => {
            // SIGHUP's default is to end the process: `systemctl reload` must not stop a server without TLS.
            #[cfg(unix)]
            if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: nothing to reload (no --tls-cert)");
                    }
                });
            }
            let serve = axum::serve(listener, service).with_graceful_shutdown(stopped(stop_rx.clone()));
            servers.push(tokio::spawn(async move { serve.await }));
        }
        Some((tls, serving)) => {
            // tap_io only so that ConnectInfo<SocketAddr> works for a listener of our own.
            let listener = axum::serve::ListenerExt::tap_io(serving.listener(listener), |_| {});
            let serve = axum::serve(listener, service).with_graceful_shutdown(stopped(stop_rx.clone()));
            servers.push(tokio::spawn(async move { serve.await }));
            if let Some(redirect) = tls.redirect_listen {
                let plain = TcpListener::bind(redirect).await.with_context(|| format!("binding {redirect}"))?;
                tracing::info!("redirecting plain HTTP on {} to HTTPS", plain.local_addr()?);
                let serve = axum::serve(plain, crate::tls::redirect_router(tls.redirect_to.clone()))
                    .with_graceful_shutdown(stopped(stop_rx.clone()));
                servers.push(tokio::spawn(async move { serve.await }));
            }
        }
    }

    shutdown_signal().await;
    // In a cluster, open calls keep going here until they end or the drain deadline; no new room
    // is placed here from the next heartbeat on, which goes out now.
    if let Some(m) = &app.membership {
        m.drain();
        if let Err(e) = m.beat().await {
            tracing::warn!("cluster: could not announce the drain ({e})");
        }
    }
    tracing::info!("shutting down: asking gateway clients to reconnect");
    chat.hub_reconnect_all();
    if app.membership.is_some() {
        // Still serving (/voice for those joining a call here), but not ready, so new traffic goes elsewhere.
        if let Some(voice) = &app.voice {
            wait_for_calls_to_end(voice).await;
        }
    }
    let _ = stop_tx.send(true);
    let drained = async {
        for server in servers {
            let _ = server.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), drained).await.is_err() {
        tracing::warn!("connections still open after 10 s; closing anyway");
    }
    chat.shutdown().await.context("flushing the store")?;
    if let Some(m) = &app.membership {
        m.leave().await;
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
