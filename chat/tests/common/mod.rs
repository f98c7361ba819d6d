//! Test harness: a real chat server on a real socket (SQLite in a temp dir), an HTTP client that
//! speaks the contract, and a gateway client.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat::voice::{GrantError, GrantRequest, VoiceGrant, VoiceGrants};
use chat::{Chat, ChatConfig};
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Chat's grant seam, answered the way the binary does but without the voice side: the token
/// carries the rights in clear so tests can check what chat decided.
pub struct EchoGrants;

#[async_trait]
impl VoiceGrants for EchoGrants {
    async fn grant(&self, r: GrantRequest) -> Result<VoiceGrant, GrantError> {
        Ok(VoiceGrant {
            endpoint: "ws://127.0.0.1:1/voice".into(),
            token: format!(
                "{}:{}:{}:{}:{}:{}",
                r.user_id, r.channel_id, r.rights.speak, r.rights.video, r.server_mute, r.server_deaf
            ),
            expires_at: chrono::Utc::now() + chrono::Duration::seconds(60),
        })
    }
}

pub struct TestServer {
    pub base: String,
    pub chat: Arc<Chat>,
    pub http: reqwest::Client,
    /// The data dir: the SQLite file, `attachments/` (the file storage) and `tmp/`.
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with_config(ChatConfig { limits: chat::ratelimit::RateLimitConfig::unlimited(), ..ChatConfig::default() })
            .await
    }

    pub async fn with_config(config: ChatConfig) -> TestServer {
        Self::with_socket_send_buffer(config, None).await
    }

    /// A server whose accepted sockets have a fixed, small send buffer (to make backpressure show
    /// after kilobytes instead of megabytes).
    pub async fn with_socket_send_buffer(config: ChatConfig, send_buffer: Option<u32>) -> TestServer {
        Self::build(config, send_buffer, None).await
    }

    /// A server whose attachments go to `storage` (S3 tests) instead of the data dir.
    pub async fn with_storage(storage: chat::attachments::Storage) -> TestServer {
        let config = ChatConfig { limits: chat::ratelimit::RateLimitConfig::unlimited(), ..ChatConfig::default() };
        Self::build(config, None, Some(storage)).await
    }

    async fn build(
        config: ChatConfig,
        send_buffer: Option<u32>,
        storage: Option<chat::attachments::Storage>,
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = chat::store::open("sqlite", dir.path()).await.expect("open sqlite");
        let chat = Chat::new(store, Arc::new(EchoGrants), config, &prometheus::Registry::new());
        let storage = storage.unwrap_or_else(|| {
            chat::attachments::Storage::local(&dir.path().join("attachments"), b"test secret")
                .expect("attachment storage")
        });
        let temp = dir.path().join("tmp");
        std::fs::create_dir_all(&temp).expect("temp dir");
        chat.attach_uploads(chat::service::attachments::Uploads::new(Arc::new(storage), temp));
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if let Some(size) = send_buffer {
            socket.set_send_buffer_size(size).expect("sndbuf");
        }
        socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let listener = socket.listen(128).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let app = chat.router().into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestServer { base: format!("http://{addr}"), chat, http: reqwest::Client::new(), dir }
    }

    pub fn ws_url(&self) -> String {
        format!("{}/gateway", self.base.replace("http://", "ws://"))
    }

    /// Registers a user; returns a client acting as them.
    pub async fn user(&self, name: &str) -> User {
        let (status, body) = self
            .call(None, Method::POST, "/auth/register", Some(json!({"username": name, "password": "password123"})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {name}: {body}");
        User {
            token: body["token"].as_str().expect("token").to_string(),
            id: body["user"]["id"].as_str().expect("id").to_string(),
            name: name.to_string(),
        }
    }

    /// One API call: returns status and JSON body (Null for empty bodies).
    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}/api/v1{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn get(&self, u: &User, path: &str) -> (StatusCode, Value) {
        self.call(Some(&u.token), Method::GET, path, None).await
    }
    pub async fn post(&self, u: &User, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Some(&u.token), Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, u: &User, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Some(&u.token), Method::PATCH, path, Some(body)).await
    }
    pub async fn put(&self, u: &User, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(Some(&u.token), Method::PUT, path, body).await
    }
    pub async fn delete(&self, u: &User, path: &str) -> (StatusCode, Value) {
        self.call(Some(&u.token), Method::DELETE, path, None).await
    }

    /// Creates a guild owned by `owner`; returns (guild id, text channel id, voice channel id).
    pub async fn guild(&self, owner: &User, name: &str) -> Guild {
        let (s, g) = self.post(owner, "/guilds", json!({"name": name})).await;
        assert_eq!(s, StatusCode::CREATED, "{g}");
        let channel = |kind: &str| {
            g["channels"].as_array().expect("channels").iter().find(|c| c["kind"] == kind).expect("channel")["id"]
                .as_str()
                .expect("id")
                .to_string()
        };
        Guild { id: g["id"].as_str().expect("id").to_string(), text: channel("text"), voice: channel("voice") }
    }

    /// Makes `who` a member of the guild through an invite.
    pub async fn join(&self, owner: &User, guild: &Guild, who: &User) {
        let (s, inv) = self.post(owner, &format!("/guilds/{}/invites", guild.id), json!({})).await;
        assert_eq!(s, StatusCode::CREATED, "{inv}");
        let code = inv["code"].as_str().expect("code");
        let (s, body) = self.post(who, &format!("/invites/{code}"), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }

    pub async fn send(&self, u: &User, channel: &str, content: &str) -> Value {
        let (s, m) = self.post(u, &format!("/channels/{channel}/messages"), json!({"content": content})).await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        m
    }

    pub async fn gateway(&self, u: &User) -> Gateway {
        let mut gw = Gateway::connect(&self.ws_url()).await;
        gw.send(json!({"op": 2, "d": {"token": u.token}})).await;
        gw
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub token: String,
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Guild {
    pub id: String,
    pub text: String,
    pub voice: String,
}

/// A raw gateway connection.
pub struct Gateway {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub hello: Value,
    pub last_seq: u64,
}

/// What the server did next.
#[derive(Debug)]
pub enum Next {
    Frame(Value),
    Closed(Option<u16>),
    Timeout,
}

impl Gateway {
    pub async fn connect(url: &str) -> Gateway {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws connect");
        let hello = match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => serde_json::from_str(&t).expect("hello json"),
            other => panic!("expected HELLO, got {other:?}"),
        };
        Gateway { ws, hello, last_seq: 0 }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(WsMessage::Text(v.to_string().into())).await.expect("ws send");
    }

    pub async fn next(&mut self, wait: Duration) -> Next {
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return Next::Timeout,
                Ok(None) | Ok(Some(Err(_))) => return Next::Closed(None),
                Ok(Some(Ok(WsMessage::Close(f)))) => return Next::Closed(f.map(|f| u16::from(f.code))),
                Ok(Some(Ok(WsMessage::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).expect("frame json");
                    if let Some(s) = v["s"].as_u64() {
                        self.last_seq = s;
                    }
                    return Next::Frame(v);
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next dispatch named `t`, skipping others; panics after 5 s.
    pub async fn expect(&mut self, t: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Next::Frame(v) if v["op"] == 0 && v["t"] == t => return v,
                Next::Frame(_) => continue,
                other => panic!("waiting for {t}: {other:?}"),
            }
        }
    }

    /// Dispatch names received within `wait` (stops at the first quiet period).
    pub async fn drain(&mut self, wait: Duration) -> Vec<String> {
        let mut names = Vec::new();
        while let Next::Frame(v) = self.next(wait).await {
            if v["op"] == 0 {
                names.push(v["t"].as_str().unwrap_or_default().to_string());
            }
        }
        names
    }

    /// Waits for the close code (skipping frames).
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.next(Duration::from_secs(10)).await {
                Next::Closed(code) => return code,
                Next::Frame(_) => continue,
                Next::Timeout => panic!("connection did not close"),
            }
        }
    }
}
