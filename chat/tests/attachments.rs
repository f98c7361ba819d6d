//! Attachments through the REST API on a real server with the data-dir storage: uploads with a
//! message (multipart), images checked and cleaned, files served by signed URL with safe headers
//! and ranges, and every kind of bad upload refused with its documented error and nothing stored.

mod common;

use std::path::PathBuf;

use common::{Guild, TestServer, User};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BOUNDARY: &str = "chorus-test-boundary-7d1f";

/// One part of a multipart body.
struct Part {
    name: &'static str,
    filename: Option<String>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

fn payload(v: Value) -> Part {
    Part { name: "payload_json", filename: None, content_type: Some("application/json"), body: v.to_string().into() }
}

fn file(name: &'static str, filename: &str, content_type: &'static str, body: Vec<u8>) -> Part {
    Part { name, filename: Some(filename.to_owned()), content_type: Some(content_type), body }
}

fn multipart(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", p.name);
        if let Some(f) = &p.filename {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        out.extend_from_slice(format!("{disposition}\r\n").as_bytes());
        if let Some(t) = p.content_type {
            out.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&p.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// A multipart send of `u` in `channel`, its body still to be set.
fn upload_request(s: &TestServer, u: &User, channel: &str) -> reqwest::RequestBuilder {
    s.http
        .post(format!("{}/api/v1/channels/{channel}/messages", s.base))
        .bearer_auth(&u.token)
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
}

async fn upload_raw(s: &TestServer, u: &User, channel: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let resp = upload_request(s, u, channel).body(body).send().await.expect("upload");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn upload(s: &TestServer, u: &User, channel: &str, parts: &[Part]) -> (StatusCode, Value) {
    upload_raw(s, u, channel, multipart(parts)).await
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).expect("png");
    out
}

/// Every stored object (the data-dir storage's files), as paths relative to its root.
fn stored(s: &TestServer) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    let root = s.dir.path().join("attachments");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

fn temp_files(s: &TestServer) -> usize {
    std::fs::read_dir(s.dir.path().join("tmp")).map(|d| d.count()).unwrap_or(0)
}

async fn get(s: &TestServer, url: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = s.http.get(format!("{}{url}", s.base));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.expect("get file")
}

async fn setup() -> (TestServer, User, User, Guild) {
    let s = TestServer::start().await;
    let owner = s.user("owner").await;
    let alice = s.user("alice").await;
    let g = s.guild(&owner, "Files").await;
    s.join(&owner, &g, &alice).await;
    (s, owner, alice, g)
}

#[tokio::test]
async fn an_image_and_a_file_are_stored_with_the_message_and_served_to_url_holders_with_safe_headers() {
    let (s, owner, alice, g) = setup().await;
    let text = b"meeting notes\nline two\n".to_vec();
    let (st, m) = upload(
        &s,
        &alice,
        &g.text,
        &[
            payload(json!({"content": "look", "nonce": "n1"})),
            file("files[0]", "photo.png", "image/png", png(900, 300)),
            file("files[1]", "notes.txt", "text/plain", text.clone()),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    let a = m["attachments"].as_array().expect("attachments");
    assert_eq!(a.len(), 2);
    assert_eq!((a[0]["width"].as_u64(), a[0]["height"].as_u64()), (Some(900), Some(300)));
    assert_eq!(a[0]["content_type"], "image/png");
    assert!(a[0]["thumbnail_url"].is_string());
    assert_eq!((a[1]["filename"].as_str(), a[1]["size"].as_u64()), (Some("notes.txt"), Some(text.len() as u64)));
    assert!(a[1]["thumbnail_url"].is_null());

    // Another member reads the history and fetches the files without a token (as an <img> would).
    let (_, history) = s.get(&owner, &format!("/channels/{}/messages", g.text)).await;
    let listed = &history[0]["attachments"];
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{history}");
    let file_url = listed[1]["url"].as_str().expect("url");
    let r = get(&s, file_url, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-security-policy"].to_str().unwrap().contains("sandbox"));
    assert!(h["content-disposition"].to_str().unwrap().starts_with("attachment;"), "files download");
    assert_eq!(r.bytes().await.unwrap().as_ref(), text.as_slice());

    let img = get(&s, listed[0]["url"].as_str().expect("url"), None).await;
    assert_eq!(img.headers()["content-type"], "image/png");
    assert!(img.headers()["content-disposition"].to_str().unwrap().starts_with("inline;"), "images show inline");
    let decoded = image::load_from_memory(&img.bytes().await.unwrap()).expect("a valid image");
    assert_eq!((decoded.width(), decoded.height()), (900, 300));
    let thumb = get(&s, listed[0]["thumbnail_url"].as_str().expect("thumb"), None).await;
    let thumb = image::load_from_memory(&thumb.bytes().await.unwrap()).expect("a valid thumbnail");
    assert_eq!((thumb.width(), thumb.height()), (400, 133));

    // Ranges, for large files and media seeking.
    let part = get(&s, file_url, Some("bytes=8-12")).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], format!("bytes 8-12/{}", text.len()));
    assert_eq!(part.bytes().await.unwrap().as_ref(), b"notes");
    assert_eq!(get(&s, file_url, Some("bytes=999-")).await.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(temp_files(&s), 0, "nothing is left in the temporary folder");
}

#[tokio::test]
async fn a_url_works_only_as_signed_and_until_it_expires() {
    let (s, _, alice, g) = setup().await;
    let (_, m) =
        upload(&s, &alice, &g.text, &[file("files[0]", "a.txt", "text/plain", b"secret plans".to_vec())]).await;
    let url = m["attachments"][0]["url"].as_str().expect("url").to_string();
    assert_eq!(get(&s, &url, None).await.status(), StatusCode::OK);
    let (path, query) = url.split_once('?').expect("query");
    let sig = query.split('&').find_map(|p| p.strip_prefix("sig=")).expect("sig");
    let forged = format!("{path}?ex=9999999999&sig={sig}");
    assert_eq!(get(&s, &forged, None).await.status(), StatusCode::NOT_FOUND, "a longer life is not signed");
    assert_eq!(get(&s, path, None).await.status(), StatusCode::NOT_FOUND, "no signature");
    let other_file = url.replacen(&m["attachments"][0]["id"].as_str().unwrap().to_string(), "1234", 1);
    assert_eq!(get(&s, &other_file, None).await.status(), StatusCode::NOT_FOUND);
    // An expired URL, signed with the server's own key (the test knows it).
    let storage = chat::attachments::Storage::local(&s.dir.path().join("unused"), b"test secret").unwrap();
    let file_path = path.trim_start_matches("/api/v1/attachments/").rsplit_once('/').expect("name").0;
    let past = chrono::Utc::now().timestamp() - 10;
    let expired =
        format!("{path}?ex={past}&sig={}", storage.sign(file_path, chat::attachments::Variant::Original, past));
    assert_eq!(get(&s, &expired, None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_deleted_messages_files_leave_storage_and_their_urls_answer_404() {
    let (s, owner, alice, g) = setup().await;
    let (_, m) = upload(&s, &alice, &g.text, &[file("files[0]", "pic.png", "image/png", png(600, 600))]).await;
    let url = m["attachments"][0]["url"].as_str().expect("url").to_string();
    assert_eq!(stored(&s).len(), 2, "original and thumbnail: {:?}", stored(&s));
    // A moderator deletes it.
    let (st, _) = s.delete(&owner, &format!("/channels/{}/messages/{}", g.text, m["id"].as_str().unwrap())).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(get(&s, &url, None).await.status(), StatusCode::NOT_FOUND);
    assert!(stored(&s).is_empty(), "removed from storage: {:?}", stored(&s));
}

#[tokio::test]
async fn deleting_a_channel_or_a_guild_removes_every_file_in_it() {
    let (s, owner, alice, g) = setup().await;
    let (_, extra) = s.post(&owner, &format!("/guilds/{}/channels", g.id), json!({"name": "extra"})).await;
    let extra = extra["id"].as_str().expect("id").to_string();
    for channel in [&g.text, &extra] {
        let (st, _) = upload(&s, &alice, channel, &[file("files[0]", "a.txt", "text/plain", b"bytes".to_vec())]).await;
        assert_eq!(st, StatusCode::CREATED);
    }
    assert_eq!(stored(&s).len(), 2);
    let (st, _) = s.delete(&owner, &format!("/channels/{extra}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(stored(&s).len(), 1, "the channel's file went with it: {:?}", stored(&s));
    let (st, _) = s.delete(&owner, &format!("/guilds/{}", g.id)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(stored(&s).is_empty(), "{:?}", stored(&s));
}

#[tokio::test]
async fn files_that_lie_about_being_images_and_decompression_bombs_are_refused_and_nothing_is_stored() {
    let (s, _, alice, g) = setup().await;
    let not_png = b"\x89PNG\r\n\x1a\nthis is not a png at all".to_vec();
    let (st, body) = upload(&s, &alice, &g.text, &[file("files[0]", "x.png", "image/png", not_png)]).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_image")), "{body}");
    let (st, body) =
        upload(&s, &alice, &g.text, &[file("files[0]", "cat.jpg", "image/jpeg", b"plain text".to_vec())]).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_image")), "{body}");
    // A PNG header announcing 60,000 × 60,000 pixels, with a tiny compressed body.
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let (st, body) = upload(&s, &alice, &g.text, &[file("files[0]", "bomb.png", "image/png", bomb)]).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("image_too_large")), "{body}");
    // A good file next to a bad one: the message is refused whole.
    let (st, _) = upload(
        &s,
        &alice,
        &g.text,
        &[
            file("files[0]", "ok.txt", "text/plain", b"fine".to_vec()),
            file("files[1]", "bad.gif", "image/gif", b"GIF89a broken".to_vec()),
        ],
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(stored(&s).is_empty(), "nothing stored: {:?}", stored(&s));
    assert_eq!(temp_files(&s), 0);
    let (_, history) = s.get(&alice, &format!("/channels/{}/messages", g.text)).await;
    assert_eq!(history.as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn oversized_truncated_and_malformed_uploads_are_refused_with_their_codes() {
    let limits = chat::attachments::UploadLimits {
        max_file_bytes: 1000,
        max_message_bytes: 1500,
        max_files: 2,
        ..chat::attachments::UploadLimits::default()
    };
    let s = TestServer::with_config(chat::ChatConfig {
        limits: chat::ratelimit::RateLimitConfig::unlimited(),
        uploads: limits,
        ..chat::ChatConfig::default()
    })
    .await;
    let alice = s.user("alice").await;
    let g = s.guild(&alice, "Limits").await;
    let blob = |n: usize| vec![b'a'; n];
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (
            multipart(&[file("files[0]", "big", "text/plain", blob(1001))]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
        ),
        (
            multipart(&[
                file("files[0]", "a", "text/plain", blob(900)),
                file("files[1]", "b", "text/plain", blob(900)),
            ]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_too_large",
        ),
        (
            multipart(&[
                file("files[0]", "a", "text/plain", blob(1)),
                file("files[1]", "b", "text/plain", blob(1)),
                file("files[2]", "c", "text/plain", blob(1)),
            ]),
            StatusCode::BAD_REQUEST,
            "too_many_files",
        ),
        (multipart(&[file("files[0]", "empty", "text/plain", vec![])]), StatusCode::BAD_REQUEST, "invalid_upload"),
        (multipart(&[file("attachment", "x", "text/plain", blob(3))]), StatusCode::BAD_REQUEST, "invalid_upload"),
        (multipart(&[payload(json!({"content": ""}))]), StatusCode::BAD_REQUEST, "validation_failed"),
        (b"--nope\r\n\r\n".to_vec(), StatusCode::BAD_REQUEST, "invalid_upload"),
    ];
    for (i, (body, status, code)) in cases.into_iter().enumerate() {
        let (st, answer) = upload_raw(&s, &alice, &g.text, body).await;
        assert_eq!((st, answer["code"].as_str()), (status, Some(code)), "case {i}: {answer}");
    }
    // Cut off in the middle of a file: no closing boundary.
    let mut cut = multipart(&[file("files[0]", "half", "text/plain", blob(500))]);
    cut.truncate(300);
    let (st, answer) = upload_raw(&s, &alice, &g.text, cut).await;
    assert_eq!((st, answer["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_upload")), "{answer}");
    assert!(stored(&s).is_empty(), "{:?}", stored(&s));
    assert_eq!(temp_files(&s), 0);
    let (_, history) = s.get(&alice, &format!("/channels/{}/messages", g.text)).await;
    assert_eq!(history.as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn names_keep_only_their_last_component_and_polyglots_download_without_running() {
    let (s, _, alice, g) = setup().await;
    let page = b"<html><body><script>alert(document.cookie)</script></body></html>".to_vec();
    let (st, m) =
        upload(&s, &alice, &g.text, &[file("files[0]", "../../../etc/evil.html", "text/html", page.clone())]).await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    let a = &m["attachments"][0];
    assert_eq!(a["filename"], "evil.html");
    assert!(
        a["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/evil.html?{}", a["url"].as_str().unwrap().split_once('?').unwrap().1))
    );
    let r = get(&s, a["url"].as_str().unwrap(), None).await;
    assert_ne!(r.headers()["content-type"], "text/html", "never served as a page");
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), page.as_slice(), "a download keeps its bytes");
    let files = stored(&s);
    assert!(files.iter().all(|p| !p.to_string_lossy().contains("evil")), "keys never use the name: {files:?}");
}

#[tokio::test]
async fn attach_files_is_needed_and_strangers_see_nothing() {
    let (s, owner, alice, g) = setup().await;
    let everyone = chat::permissions::Permissions::DEFAULT_EVERYONE - chat::permissions::Permissions::ATTACH_FILES;
    let (st, _) = s
        .patch(&owner, &format!("/guilds/{}/roles/{}", g.id, g.id), json!({"permissions": everyone.bits().to_string()}))
        .await;
    assert_eq!(st, StatusCode::OK);
    let one = || [file("files[0]", "a.txt", "text/plain", b"x".to_vec())];
    let (st, body) = upload(&s, &alice, &g.text, &one()).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("missing_permission")), "{body}");
    let stranger = s.user("stranger").await;
    let (st, _) = upload(&s, &stranger, &g.text, &one()).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = upload(&s, &owner, &g.text, &one()).await;
    assert_eq!(st, StatusCode::CREATED, "the owner may");
    // Text alone still goes (multipart without files is a plain message).
    let (st, m) = upload(&s, &alice, &g.text, &[payload(json!({"content": "just words"}))]).await;
    assert_eq!((st, m["content"].as_str()), (StatusCode::FORBIDDEN, None), "multipart asks for ATTACH_FILES");
}

#[tokio::test]
async fn the_quota_refuses_uploads_past_it_and_a_delete_gives_the_space_back() {
    let s = TestServer::with_config(chat::ChatConfig {
        limits: chat::ratelimit::RateLimitConfig::unlimited(),
        uploads: chat::attachments::UploadLimits { quota_bytes: 1000, ..chat::attachments::UploadLimits::default() },
        ..chat::ChatConfig::default()
    })
    .await;
    let alice = s.user("alice").await;
    let g = s.guild(&alice, "Quota").await;
    let (st, first) = upload(&s, &alice, &g.text, &[file("files[0]", "a", "text/plain", vec![b'a'; 800])]).await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let (st, body) = upload(&s, &alice, &g.text, &[file("files[0]", "b", "text/plain", vec![b'b'; 300])]).await;
    assert_eq!((st, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("over_quota")), "{body}");
    let (st, _) = s.delete(&alice, &format!("/channels/{}/messages/{}", g.text, first["id"].as_str().unwrap())).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = upload(&s, &alice, &g.text, &[file("files[0]", "b", "text/plain", vec![b'b'; 300])]).await;
    assert_eq!(st, StatusCode::CREATED, "space given back: {body}");
}

#[tokio::test]
async fn a_retried_upload_with_the_same_nonce_keeps_only_the_first_files() {
    let (s, _, alice, g) = setup().await;
    let parts = || [payload(json!({"nonce": "retry-1"})), file("files[0]", "a.txt", "text/plain", b"once".to_vec())];
    let (st, first) = upload(&s, &alice, &g.text, &parts()).await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let (_, again) = upload(&s, &alice, &g.text, &parts()).await;
    assert_eq!(again["id"], first["id"], "the same message");
    assert_eq!(again["attachments"][0]["id"], first["attachments"][0]["id"]);
    assert_eq!(stored(&s).len(), 1, "the retry's copy is gone: {:?}", stored(&s));
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[tokio::test]
async fn a_client_that_hangs_up_once_its_files_are_sent_still_gets_its_message_and_leaves_no_orphan() {
    use tokio::io::AsyncWriteExt;
    let (s, _, alice, g) = setup().await;
    // A text file (stored at once), then a large image (long to decode and thumbnail).
    let body = multipart(&[
        payload(json!({"content": "bye"})),
        file("files[0]", "notes.txt", "text/plain", b"stored first".to_vec()),
        file("files[1]", "big.png", "image/png", png(3000, 2000)),
    ]);
    let host = s.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(host).await.expect("connect");
    let head = format!(
        "POST /api/v1/channels/{}/messages HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        g.text,
        alice.token,
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    tcp.write_all(&body).await.expect("body");
    // Hang up as soon as the server has stored the first file, while it decodes the image.
    for _ in 0..600 {
        if !stored(&s).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(!stored(&s).is_empty(), "the server began storing the files");
    drop(tcp);

    let mut message = Value::Null;
    for _ in 0..300 {
        let (_, list) = s.get(&alice, &format!("/channels/{}/messages", g.text)).await;
        if let Some(m) = list.as_array().and_then(|l| l.first()) {
            message = m.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let attachments = message["attachments"].as_array().cloned().unwrap_or_default();
    assert_eq!(attachments.len(), 2, "the message was posted with both files: {message} {:?}", stored(&s));
    let thumbnails = attachments.iter().filter(|a| !a["thumbnail_url"].is_null()).count();
    assert_eq!(stored(&s).len(), 2 + thumbnails, "storage holds the message's files and nothing else");
    assert_eq!(temp_files(&s), 0, "no staged file left");
}

/// A multipart send whose `payload_json` and first file bytes arrive and whose body then never
/// ends: what the server answers before reading the rest (None after 10 s).
async fn upload_that_never_ends(s: &TestServer, u: &User, channel: &str, payload_json: Value) -> Option<(u16, Value)> {
    let head = multipart(&[payload(payload_json)]);
    let mut head = head[..head.len() - format!("--{BOUNDARY}--\r\n").len()].to_vec();
    head.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"big.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    head.extend_from_slice(&[7u8; 64 * 1024]);
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(head) });
    let body = reqwest::Body::wrap_stream(first.chain(futures::stream::pending()));
    let send = upload_request(s, u, channel).body(body).send();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), send).await.ok()?.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn in_slow_mode_a_send_with_files_is_refused_before_its_files_are_read_and_a_retry_still_answers() {
    let (s, owner, alice, g) = setup().await;
    s.patch(&owner, &format!("/channels/{}", g.text), json!({"rate_limit_per_user": 60})).await;
    let parts = || {
        [payload(json!({"content": "one", "nonce": "slow-1"})), file("files[0]", "a.txt", "text/plain", b"a".to_vec())]
    };
    let (st, first) = upload(&s, &alice, &g.text, &parts()).await;
    assert_eq!(st, StatusCode::CREATED, "{first}");

    let answer = upload_that_never_ends(&s, &alice, &g.text, json!({"content": "two", "nonce": "slow-2"})).await;
    let (status, body) = answer.expect("an answer without the rest of the body");
    assert_eq!((status, body["code"].as_str()), (429, Some("slow_mode")), "{body}");
    assert_eq!(temp_files(&s), 0, "nothing staged");

    let (st, again) = upload(&s, &alice, &g.text, &parts()).await;
    assert!(st.is_success(), "a retry of the first send passes the early check: {st} {again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(stored(&s).len(), 1, "only the first send's file: {:?}", stored(&s));
}
