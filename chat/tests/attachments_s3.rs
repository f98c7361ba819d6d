//! Attachments on S3-compatible object storage: the same storage API and the same upload, serve
//! and delete path as on the data dir, against the server `CHORUS_TEST_S3_URI` names
//! (`s3://BUCKET?endpoint=…`, credentials in `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`). The
//! test command starts moto's S3 server for it; a real S3 works the same way. Without the variable
//! every case is skipped with a line on stderr.

mod common;

use chat::Id;
use chat::attachments::{Storage, Variant};
use common::TestServer;
use reqwest::StatusCode;

fn s3() -> Option<Storage> {
    let Ok(uri) = std::env::var("CHORUS_TEST_S3_URI") else {
        eprintln!("CHORUS_TEST_S3_URI unset: S3 attachment storage NOT tested");
        return None;
    };
    Some(Storage::open(&uri, std::path::Path::new("/nonexistent"), b"test secret").expect("the S3 URI opens"))
}

/// Ids that no other run uses, so runs against one bucket cannot see each other's objects.
fn fresh_id() -> Id {
    Id::from_raw(u64::try_from(chrono::Utc::now().timestamp_micros()).expect("after 1970") << 8)
}

#[tokio::test]
async fn a_multipart_sized_file_goes_to_s3_and_comes_back_whole_and_by_range_then_is_deleted() {
    let Some(storage) = s3() else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    // Over one 5 MiB part, so the multipart upload path is the one exercised.
    let data: Vec<u8> = (0..(6 << 20) + 123).map(|i: u32| (i % 253) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let (channel, attachment) = (fresh_id(), Id::from_raw(42));
    let key = Storage::key(channel, attachment, Variant::Original);
    storage.put_file(&key, &src).await.unwrap();
    assert_eq!(storage.size(&key).await.unwrap(), data.len() as u64);
    let all = storage.get(&key, None).await.unwrap().bytes().await.unwrap();
    assert!(all.as_ref() == data.as_slice(), "the bytes come back whole");
    let part = storage.get(&key, Some(5_000_000..5_000_100)).await.unwrap().bytes().await.unwrap();
    assert_eq!(part.as_ref(), &data[5_000_000..5_000_100]);
    assert_eq!(storage.keys_of_channel(channel).await.unwrap(), vec![format!("{channel}/{attachment}/original")]);
    storage.delete(channel, attachment).await.unwrap();
    assert!(storage.keys_of_channel(channel).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_upload_through_the_api_is_served_from_s3_and_removed_with_its_message() {
    let Some(storage) = s3() else { return };
    let s = TestServer::with_storage(storage).await;
    let alice = s.user("alice").await;
    let g = s.guild(&alice, "S3").await;
    let body = b"kept in a bucket".to_vec();
    let boundary = "s3-test-boundary";
    let mut multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"note.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    multipart.extend_from_slice(&body);
    multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = s
        .http
        .post(format!("{}/api/v1/channels/{}/messages", s.base, g.text))
        .bearer_auth(&alice.token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(multipart)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let m: serde_json::Value = resp.json().await.unwrap();
    let url = m["attachments"][0]["url"].as_str().expect("url").to_string();
    let got = s.http.get(format!("{}{url}", s.base)).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().as_ref(), body.as_slice());
    let (st, _) = s.delete(&alice, &format!("/channels/{}/messages/{}", g.text, m["id"].as_str().unwrap())).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let channel: Id = g.text.parse().unwrap();
    let check = Storage::open(&std::env::var("CHORUS_TEST_S3_URI").unwrap(), std::path::Path::new("/x"), b"k").unwrap();
    assert!(check.keys_of_channel(channel).await.unwrap().is_empty(), "the object left the bucket");
    assert_eq!(s.http.get(format!("{}{url}", s.base)).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}
