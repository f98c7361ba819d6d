//! `upload`: attachments. Rounds of `--concurrent` uploads of a `--file-mb` file at once (upload
//! throughput, server CPU per MB, and the server's resident memory while they run — uploads stream
//! to disk, so it must not grow with the files), then `--images` images one by one (the time the
//! server takes to check, re-encode and thumbnail each, as the upload's latency). Every upload is
//! read back once to prove it was stored whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{ServerSnapshot, server_usage, setup_guild};
use crate::cli::UploadParams;
use crate::client::api::Account;
use crate::measure::latency::Histogram;
use crate::measure::proc;
use crate::report::Report;
use crate::target::Target;

const BOUNDARY: &str = "chorus-bench-upload-boundary";

/// A multipart body with one file part.
fn body(name: &str, content_type: &str, data: &[u8]) -> Bytes {
    let mut out = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"{name}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Bytes::from(out)
}

/// Posts one upload; returns the message.
async fn upload(http: &reqwest::Client, base: &str, who: &Account, channel: &str, body: Bytes) -> Result<Value> {
    let resp = http
        .post(format!("{base}/api/v1/channels/{channel}/messages"))
        .bearer_auth(&who.token)
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "upload answered {status}: {v}");
    Ok(v)
}

/// A photo-like image (gradients and noise, so compression has work to do), as PNG.
fn image(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state & 0x1f) as u8;
        image::Rgb([(x * 255 / width) as u8 ^ noise, (y * 255 / height) as u8, ((x + y) % 256) as u8 ^ noise])
    });
    let mut out = Vec::new();
    // The encoder writes to memory, which cannot fail.
    let _ = img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png);
    out
}

pub async fn run(target: &mut Target, p: &UploadParams) -> Result<Report> {
    anyhow::ensure!(
        p.concurrent > 0 && p.rounds > 0 && p.file_mb > 0,
        "--concurrent, --rounds and --file-mb must be positive"
    );
    let (iw, ih) = p
        .image_size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .context("--image-size must be WIDTHxHEIGHT")?;
    let mut report = Report::new("upload", serde_json::to_value(p)?);
    let (owner, guild, _) = setup_guild(target, "upload", 1, 0, false).await?;
    let api = target.chorus()?.clone();
    let (http, base, channel) = (api.http().clone(), api.base().to_owned(), guild.text_channel.clone());

    // Random-looking bytes, so that nothing on the way can compress them.
    let file_bytes = p.file_mb << 20;
    let data: Vec<u8> =
        (0..file_bytes as u64).map(|i| (i.wrapping_mul(6_364_136_223_846_793_005) >> 56) as u8).collect();
    let payload = body("bench.bin", "application/octet-stream", &data);

    // The server's RSS, sampled while the uploads run.
    let peak = Arc::new(AtomicU64::new(0));
    let rss_idle = target.pid.and_then(proc::sample).map(|s| s.rss_kib);
    let sampler = target.pid.map(|pid| {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(s) = proc::sample(pid) {
                    peak.fetch_max(s.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
    let before = ServerSnapshot::take(target).await;
    let started = Instant::now();
    let mut latency = Histogram::default();
    let mut ok = 0usize;
    let mut urls = Vec::new();
    let pb = crate::progress::bar((p.rounds * p.concurrent) as u64, "uploading");
    for _ in 0..p.rounds {
        let mut round = Vec::new();
        for _ in 0..p.concurrent {
            let (http, base, owner, channel, payload) =
                (http.clone(), base.clone(), owner.clone(), channel.clone(), payload.clone());
            round.push(tokio::spawn(async move {
                let t = Instant::now();
                let r = upload(&http, &base, &owner, &channel, payload).await;
                (t.elapsed(), r)
            }));
        }
        for task in round {
            let (took, r) = task.await?;
            pb.inc(1);
            match r {
                Ok(m) => {
                    ok += 1;
                    latency.record(took);
                    if let Some(u) = m["attachments"][0]["url"].as_str() {
                        urls.push(u.to_owned());
                    }
                }
                Err(e) => report.failures.push(format!("upload: {e:#}")),
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = ServerSnapshot::take(target).await;
    pb.finish_and_clear();
    if let Some(s) = sampler {
        s.abort();
    }
    let mb = (ok * p.file_mb) as f64;
    report.metric("uploads", ok as f64, "");
    report.metric("upload_throughput", mb / elapsed, "MiB/s");
    let ls = latency.summary();
    report.metric("upload_latency_p50", ls.p50_ms, "ms");
    report.metric("upload_latency_p95", ls.p95_ms, "ms");
    if let Some(cpu) = server_usage(&mut report, &before, &after)
        && mb > 0.0
    {
        report.metric("server_cpu_per_mib", cpu * 1000.0 / mb, "ms");
    }
    if let Some(idle) = rss_idle {
        let peak = peak.load(Ordering::Relaxed);
        report.metric("rss_before_uploads", idle as f64 / 1024.0, "MiB");
        report.metric("rss_peak_during_uploads", peak as f64 / 1024.0, "MiB");
        report.metric(
            "rss_growth_per_concurrent_upload",
            peak.saturating_sub(idle) as f64 / 1024.0 / p.concurrent as f64,
            "MiB",
        );
    }
    // One file read back whole: the uploads were stored, not just acknowledged.
    if let Some(u) = urls.first() {
        let back = http.get(format!("{base}{u}")).send().await?.bytes().await?;
        report.check(back.as_ref() == data.as_slice(), "a stored upload reads back byte for byte");
    }

    // Images, one at a time: the server's time to check, clean and thumbnail each.
    let mut per_image = Histogram::default();
    let pb = crate::progress::bar(p.images as u64, "images");
    for i in 0..p.images {
        let png = image(iw, ih, i as u32 + 1);
        let t = Instant::now();
        match upload(&http, &base, &owner, &channel, body("photo.png", "image/png", &png)).await {
            Ok(m) => {
                per_image.record(t.elapsed());
                report.check(m["attachments"][0]["thumbnail_url"].is_string(), "an image got a thumbnail");
            }
            Err(e) => report.failures.push(format!("image upload: {e:#}")),
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    if p.images > 0 {
        let s = per_image.summary();
        report.metric("image_upload_p50", s.p50_ms, "ms");
        report.metric("image_upload_max", s.max_ms, "ms");
    }
    report.details = json!({"upload_latency": ls, "image_upload": per_image.summary()});
    report.check(ok == p.rounds * p.concurrent, format!("{ok} of {} uploads were accepted", p.rounds * p.concurrent));
    Ok(report)
}
