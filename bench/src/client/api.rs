//! Chorus's REST API, as the web client uses it: register, guilds, invites, voice grants, messages.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

/// Password of every bench account (accounts live only in the target's database).
const PASSWORD: &str = "bench-password-123";

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// A logged-in account (empty for Janus, which has none).
#[derive(Clone, Debug, Default)]
pub struct Account {
    pub token: String,
}

/// A guild made for a run: its id, its invite, its text channel and its voice channels.
#[derive(Clone, Debug)]
pub struct BenchGuild {
    pub invite: String,
    pub text_channel: String,
    pub voice_channels: Vec<String>,
}

/// A voice grant: where to connect and with which token.
#[derive(Clone, Debug)]
pub struct Grant {
    pub endpoint: String,
    pub token: String,
}

fn str_field(v: &Value, key: &str) -> Result<String> {
    v[key].as_str().map(str::to_owned).ok_or_else(|| anyhow!("answer without string `{key}`: {v}"))
}

impl Api {
    pub fn new(base: &str) -> Result<Api> {
        Api::with_idle_pool(base, 64)
    }

    /// A client keeping at most `idle` idle connections to the server (a soak's poster keeps
    /// few, so that a burst of slow posts does not leave the server holding dozens of sockets).
    pub fn with_idle_pool(base: &str, idle: usize) -> Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(idle)
            .build()
            .context("building the HTTP client")?;
        Ok(Api { http, base: base.trim_end_matches('/').to_owned() })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The gateway's WebSocket URL on the same server.
    pub fn gateway_url(&self) -> String {
        format!("{}/gateway", self.base.replacen("http", "ws", 1))
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn call(
        &self,
        method: reqwest::Method,
        token: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self.http.request(method.clone(), format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let text = resp.text().await.with_context(|| format!("{method} {path}: reading the answer"))?;
        if !status.is_success() {
            bail!("{method} {path}: {status} {text}");
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: answer is not JSON"))
    }

    pub async fn post(&self, token: Option<&str>, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, token, path, Some(body)).await
    }

    pub async fn register(&self, username: &str) -> Result<Account> {
        let v = self.post(None, "/auth/register", json!({"username": username, "password": PASSWORD})).await?;
        Ok(Account { token: str_field(&v, "token")? })
    }

    /// A guild with its default channels, `voice_rooms` voice channels (the default `General`
    /// counts as the first) and an invite.
    pub async fn create_guild(&self, owner: &Account, name: &str, voice_rooms: usize) -> Result<BenchGuild> {
        let g = self.post(Some(&owner.token), "/guilds", json!({"name": name})).await?;
        let id = str_field(&g, "id")?;
        let channels = g["channels"].as_array().cloned().unwrap_or_default();
        let of_kind = |kind: &str| -> Vec<String> {
            channels.iter().filter(|c| c["kind"] == kind).filter_map(|c| c["id"].as_str().map(str::to_owned)).collect()
        };
        let text_channel =
            of_kind("text").into_iter().next().ok_or_else(|| anyhow!("new guild without a text channel"))?;
        let mut voice_channels: Vec<String> = of_kind("voice").into_iter().take(voice_rooms).collect();
        while voice_channels.len() < voice_rooms {
            let name = format!("room-{}", voice_channels.len());
            let c = self
                .post(Some(&owner.token), &format!("/guilds/{id}/channels"), json!({"name": name, "kind": "voice"}))
                .await?;
            voice_channels.push(str_field(&c, "id")?);
        }
        let invite = self.post(Some(&owner.token), &format!("/guilds/{id}/invites"), json!({})).await?;
        Ok(BenchGuild { invite: str_field(&invite, "code")?, text_channel, voice_channels })
    }

    pub async fn accept_invite(&self, who: &Account, code: &str) -> Result<()> {
        self.post(Some(&who.token), &format!("/invites/{code}"), json!({})).await.map(|_| ())
    }

    pub async fn voice_grant(&self, who: &Account, channel: &str) -> Result<Grant> {
        let v = self.post(Some(&who.token), &format!("/channels/{channel}/voice"), json!({})).await?;
        Ok(Grant { endpoint: str_field(&v, "endpoint")?, token: str_field(&v, "token")? })
    }

    /// Posts a message; true when the server accepted it.
    pub async fn post_message(&self, who: &Account, channel: &str, content: &str) -> bool {
        self.post(Some(&who.token), &format!("/channels/{channel}/messages"), json!({"content": content})).await.is_ok()
    }

    /// Registers `n` accounts named `{prefix}{i}` that join `guild`, `parallel` at a time
    /// (argon2 makes registration deliberately slow); `progress` is called after each.
    pub async fn register_members(
        &self,
        prefix: &str,
        n: usize,
        guild: &BenchGuild,
        parallel: usize,
        progress: impl Fn() + Send + Sync,
    ) -> Result<Vec<Account>> {
        use futures::StreamExt;
        let progress = &progress;
        let results: Vec<Result<Account>> = futures::stream::iter(0..n)
            .map(|i| async move {
                let a = self.register(&format!("{prefix}{i}")).await?;
                self.accept_invite(&a, &guild.invite).await?;
                progress();
                Ok(a)
            })
            .buffered(parallel.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Waits until `GET /readyz` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        super::wait_until_ok(&self.http, &format!("{}/readyz", self.base), "Chorus", timeout).await
    }
}
