//! The bench's clients of Chorus: its REST API, its chat gateway, and voice peers (the /voice
//! WebSocket plus str0m peer connections sending and receiving real Opus or synthetic VP8
//! simulcast).

pub mod api;
pub mod audio;
pub mod chorus_signal;
pub mod gateway;
pub mod janus_signal;
pub mod turn;
pub mod video;
pub mod voice;

use std::time::Duration;

/// Polls `url` every 100 ms until it answers with a success status; the error names `what` and the timeout.
pub(crate) async fn wait_until_ok(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            anyhow::bail!("{what} did not answer {url} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn readiness_wait_returns_once_the_url_answers_200() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/readyz", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            }
        });
        wait_until_ok(&reqwest::Client::new(), &url, "test server", Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test]
    async fn readiness_wait_gives_up_after_the_timeout_naming_the_server() {
        // A port that was just free: nothing answers there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/info");
        let err = wait_until_ok(&reqwest::Client::new(), &url, "Janus", Duration::from_millis(300)).await.unwrap_err();
        assert!(err.to_string().starts_with("Janus did not answer"), "{err}");
    }
}
