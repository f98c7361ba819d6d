//! Link previews on a real server, against a local test site the test starts and allow-lists (by
//! its exact address): a link gets its embed (MESSAGE_UPDATE, history, the image through the
//! proxy), and every SSRF target is refused without the fetcher ever connecting to it.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chat::ChatConfig;
use chat::service::previews::PreviewConfig;
use common::{Gateway, TestServer};
use serde_json::Value;

fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(32, 16, |x, _| image::Rgb([x as u8 * 8, 40, 200]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).expect("png");
    out
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// An internal service the previews must never reach; counts every request it gets.
async fn internal() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            "<html><head><title>internal secrets</title></head></html>"
        }
    });
    (serve(app).await, hits)
}

/// The public-looking test site (allow-listed by its exact address).
async fn site(internal: SocketAddr) -> SocketAddr {
    let html = |title: &'static str| {
        move || async move {
            let page = format!(
                "<html><head><title>fallback</title><meta property=\"og:title\" content=\"{title}\">\
                 <meta property=\"og:description\" content=\"A page &amp; its card\">\
                 <meta property=\"og:site_name\" content=\"Test Site\">\
                 <meta property=\"og:image\" content=\"/cover.png\"></head><body>hi</body></html>"
            );
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page)
        }
    };
    let app = Router::new()
        .route("/page", get(html("The page")))
        .route("/second", get(html("Second page")))
        .route("/cover.png", get(|| async { ([(header::CONTENT_TYPE, "image/png")], png()) }))
        .route(
            "/to-internal",
            get(move || async move {
                let mut h = HeaderMap::new();
                h.insert(header::LOCATION, format!("http://{internal}/secret").parse().expect("location"));
                (AxumStatus::FOUND, h).into_response()
            }),
        )
        .route("/text", get(|| async { "just text" }));
    serve(app).await
}

async fn server(allowed: SocketAddr) -> TestServer {
    TestServer::with_config(ChatConfig {
        limits: chat::ratelimit::RateLimitConfig::unlimited(),
        previews: PreviewConfig { enabled: true, allowed: vec![allowed] },
        ..ChatConfig::default()
    })
    .await
}

/// The next MESSAGE_UPDATE about `id` that carries embeds.
async fn embeds_of(gw: &mut Gateway, id: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no preview arrived for {id}");
        let ev = gw.expect("MESSAGE_UPDATE").await;
        if ev["d"]["id"] == id {
            return ev["d"]["embeds"].as_array().cloned().unwrap_or_default();
        }
    }
}

#[tokio::test]
async fn a_link_gets_a_preview_card_whose_image_comes_through_the_proxy() {
    let (internal_addr, _) = internal().await;
    let site_addr = site(internal_addr).await;
    let s = server(site_addr).await;
    let alice = s.user("alice").await;
    let g = s.guild(&alice, "Links").await;
    let mut gw = s.gateway(&alice).await;
    gw.expect("READY").await;
    let m = s.send(&alice, &g.text, &format!("look at http://{site_addr}/page please")).await;
    assert_eq!(m["embeds"], Value::Array(vec![]), "previews come after the send");
    let embeds = embeds_of(&mut gw, m["id"].as_str().unwrap()).await;
    assert_eq!(embeds.len(), 1);
    let e = &embeds[0];
    assert_eq!(e["url"], format!("http://{site_addr}/page"));
    assert_eq!((e["title"].as_str(), e["description"].as_str()), (Some("The page"), Some("A page & its card")));
    assert_eq!(e["site_name"], "Test Site");
    let image_url = e["image_url"].as_str().expect("image through the proxy");
    assert!(image_url.starts_with("/api/v1/link-previews/image?"), "{image_url}");
    let img = s.http.get(format!("{}{image_url}", s.base)).send().await.unwrap();
    assert_eq!(img.headers()["content-type"], "image/png");
    assert_eq!(img.headers()["x-content-type-options"], "nosniff");
    assert_eq!(img.bytes().await.unwrap().as_ref(), png().as_slice());
    // The card is kept with the message.
    let (_, history) = s.get(&alice, &format!("/channels/{}/messages", g.text)).await;
    assert_eq!(history[0]["embeds"][0]["title"], "The page");
    // A forged proxy URL is refused.
    let forged = image_url.replace("sig=", "sig=00");
    assert_eq!(
        s.http.get(format!("{}{forged}", s.base)).send().await.unwrap().status(),
        reqwest::StatusCode::NOT_FOUND
    );
    let other = format!("/api/v1/link-previews/image?url=http%3A%2F%2F{internal_addr}%2F&sig={}", "0".repeat(64));
    assert_eq!(s.http.get(format!("{}{other}", s.base)).send().await.unwrap().status(), reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn internal_addresses_are_never_fetched_directly_by_name_or_through_a_redirect() {
    let (internal_addr, hits) = internal().await;
    let site_addr = site(internal_addr).await;
    let s = server(site_addr).await;
    let alice = s.user("alice").await;
    let g = s.guild(&alice, "SSRF").await;
    let mut gw = s.gateway(&alice).await;
    gw.expect("READY").await;
    let port = internal_addr.port();
    // Each message: two targets that must be refused, then the allowed page (which proves the job ran).
    let batches = [
        format!("http://127.0.0.1:{port}/admin http://10.0.0.1/ http://{site_addr}/page"),
        format!("http://[::1]:{port}/ http://169.254.169.254/latest/meta-data/ http://{site_addr}/second"),
        format!("http://localhost:{port}/ http://{site_addr}/to-internal http://{site_addr}/page"),
        format!("http://0.0.0.0:{port}/ http://{site_addr}/text http://{site_addr}/second"),
    ];
    for content in &batches {
        let m = s.send(&alice, &g.text, content).await;
        let embeds = embeds_of(&mut gw, m["id"].as_str().unwrap()).await;
        let urls: Vec<&str> = embeds.iter().filter_map(|e| e["url"].as_str()).collect();
        assert_eq!(urls.len(), 1, "only the allowed page got a card: {embeds:?}");
        assert!(urls[0].starts_with(&format!("http://{site_addr}/")), "{urls:?}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the internal service was never contacted");
}

#[tokio::test]
async fn with_previews_off_or_without_embed_links_a_link_stays_bare() {
    let (internal_addr, _) = internal().await;
    let site_addr = site(internal_addr).await;
    let s = TestServer::with_config(ChatConfig {
        limits: chat::ratelimit::RateLimitConfig::unlimited(),
        previews: PreviewConfig { enabled: false, allowed: vec![site_addr] },
        ..ChatConfig::default()
    })
    .await;
    let alice = s.user("alice").await;
    let g = s.guild(&alice, "Off").await;
    let mut gw = s.gateway(&alice).await;
    gw.expect("READY").await;
    s.send(&alice, &g.text, &format!("http://{site_addr}/page")).await;
    let names = gw.drain(Duration::from_secs(2)).await;
    assert!(!names.iter().any(|n| n == "MESSAGE_UPDATE"), "{names:?}");
}
