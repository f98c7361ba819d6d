//! Where attachment bytes live: `object_store` over the data dir or an S3-compatible bucket.
//!
//! Keys are `CHANNEL/ATTACHMENT/original` and `CHANNEL/ATTACHMENT/thumbnail`, made from ids only, so
//! no uploaded name can reach a path. File URLs carry an expiry and an HMAC-SHA256 of what they
//! name, under a key derived from the node's secret (every node of a cluster shares it).

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use hmac::{Hmac, Mac};
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, GetResult, ObjectStore, WriteMultipart};
use sha2::Sha256;
use tokio::io::AsyncReadExt;

use crate::id::Id;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("attachment storage setting: {0}")]
    Config(String),
    #[error("no such file")]
    NotFound,
    #[error("attachment storage: {0}")]
    Backend(String),
}

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound,
            other => StorageError::Backend(other.to_string()),
        }
    }
}

/// Which rendition of an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Original,
    Thumbnail,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Original => "original",
            Variant::Thumbnail => "thumbnail",
        }
    }
}

pub struct Storage {
    objects: Arc<dyn ObjectStore>,
    backend: &'static str,
    url_key: [u8; 32],
}

/// Bytes read from a file per chunk handed to the store (parts are this size locally, 5 MiB on S3).
const READ_CHUNK: usize = 1 << 20;

impl Storage {
    /// `local` (the data dir's `attachments/`), `local:DIR`, or
    /// `s3://BUCKET?endpoint=URL&region=R&allow_http=true` with credentials from the standard
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` variables.
    pub fn open(uri: &str, data_dir: &Path, secret: &[u8]) -> Result<Storage, StorageError> {
        let uri = uri.trim();
        if uri.is_empty() || uri == "local" {
            Self::local(&data_dir.join("attachments"), secret)
        } else if let Some(dir) = uri.strip_prefix("local:") {
            Self::local(Path::new(dir), secret)
        } else if uri.starts_with("s3://") {
            Self::s3(uri, secret)
        } else {
            Err(StorageError::Config(format!("{uri:?}: use local, local:DIR or s3://BUCKET?endpoint=…")))
        }
    }

    pub fn local(dir: &Path, secret: &[u8]) -> Result<Storage, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Config(format!("{}: {e}", dir.display())))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| StorageError::Config(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(Storage { objects: Arc::new(fs), backend: "local", url_key: url_key(secret) })
    }

    pub fn s3(uri: &str, secret: &[u8]) -> Result<Storage, StorageError> {
        let rest = uri.strip_prefix("s3://").unwrap_or(uri);
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        let bucket = bucket.trim_end_matches('/');
        if bucket.is_empty() {
            return Err(StorageError::Config("s3:// needs a bucket name".into()));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
            builder = match k {
                "endpoint" => builder.with_endpoint(v),
                "region" => builder.with_region(v),
                "allow_http" => builder.with_allow_http(v == "true"),
                "path_style" => builder.with_virtual_hosted_style_request(v != "true"),
                other => return Err(StorageError::Config(format!("unknown s3 option {other:?}"))),
            };
        }
        let s3 = builder.build().map_err(|e| StorageError::Config(e.to_string()))?;
        Ok(Storage { objects: Arc::new(s3), backend: "s3", url_key: url_key(secret) })
    }

    /// "local" or "s3", for logs and metrics.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    pub fn key(channel_id: Id, attachment_id: Id, variant: Variant) -> Key {
        Key::from(format!("{channel_id}/{attachment_id}/{}", variant.as_str()))
    }

    /// Copies a local file into the store, a chunk at a time (never the whole file in memory).
    pub async fn put_file(&self, key: &Key, file: &Path) -> Result<(), StorageError> {
        let mut src = tokio::fs::File::open(file).await.map_err(|e| StorageError::Backend(e.to_string()))?;
        let upload = self.objects.put_multipart(key).await?;
        // S3 parts are at least 5 MiB (the last aside); a local file takes any size, so each upload
        // in flight holds only a small buffer.
        let part = if self.backend == "s3" { 5 << 20 } else { READ_CHUNK };
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match src.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StorageError::Backend(e.to_string()));
                }
            };
            writer.wait_for_capacity(2).await?;
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        Ok(())
    }

    /// The whole object, or one byte range of it.
    pub async fn get(&self, key: &Key, range: Option<std::ops::Range<u64>>) -> Result<GetResult, StorageError> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
        Ok(self.objects.get_opts(key, options).await?)
    }

    /// The object's size.
    pub async fn size(&self, key: &Key) -> Result<u64, StorageError> {
        Ok(self.objects.head(key).await?.size)
    }

    /// Removes both renditions; a missing one is fine.
    pub async fn delete(&self, channel_id: Id, attachment_id: Id) -> Result<(), StorageError> {
        for variant in [Variant::Original, Variant::Thumbnail] {
            match self.objects.delete(&Self::key(channel_id, attachment_id, variant)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Removes every file of a channel (the channel is gone); returns how many.
    pub async fn delete_channel(&self, channel_id: Id) -> Result<usize, StorageError> {
        let keys = self.keys_of_channel(channel_id).await?;
        for key in &keys {
            match self.objects.delete(&Key::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(keys.len())
    }

    /// Every key under a channel's prefix (tests and the operator's checks).
    pub async fn keys_of_channel(&self, channel_id: Id) -> Result<Vec<String>, StorageError> {
        let prefix = Key::from(channel_id.to_string());
        let mut list = self.objects.list(Some(&prefix));
        let mut out = Vec::new();
        while let Some(meta) = list.next().await {
            out.push(meta?.location.to_string());
        }
        Ok(out)
    }

    /// The signature of a file URL valid until `expires` (Unix seconds).
    pub fn sign(&self, message_path: &str, variant: Variant, expires: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.url_key).expect("HMAC takes any key length");
        mac.update(format!("{message_path}\n{}\n{expires}", variant.as_str()).as_bytes());
        crate::credentials::hex(&mac.finalize().into_bytes())
    }

    /// Whether `sig` signs this file until `expires`, and `expires` has not passed at `now`.
    pub fn verify(&self, message_path: &str, variant: Variant, expires: i64, sig: &str, now: i64) -> bool {
        if expires < now {
            return false;
        }
        let Some(sig) = crate::credentials::unhex32(sig) else { return false };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.url_key).expect("HMAC takes any key length");
        mac.update(format!("{message_path}\n{}\n{expires}", variant.as_str()).as_bytes());
        mac.verify_slice(&sig).is_ok()
    }
}

/// A key for URL signatures only, derived from the node's secret (which also signs voice tokens).
fn url_key(secret: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"chorus attachment urls v1");
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (Storage, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Storage::local(dir.path(), b"secret").unwrap(), dir)
    }

    #[test]
    fn a_url_signature_holds_for_what_it_names_until_it_expires() {
        let (s, _dir) = storage();
        let sig = s.sign("1/2/3", Variant::Original, 1000);
        assert!(s.verify("1/2/3", Variant::Original, 1000, &sig, 999));
        assert!(!s.verify("1/2/3", Variant::Original, 1000, &sig, 1001), "expired");
        assert!(!s.verify("1/2/4", Variant::Original, 1000, &sig, 999), "another file");
        assert!(!s.verify("1/2/3", Variant::Thumbnail, 1000, &sig, 999), "another rendition");
        assert!(!s.verify("1/2/3", Variant::Original, 2000, &sig, 999), "a longer life");
        assert!(!s.verify("1/2/3", Variant::Original, 1000, "zz", 999), "garbage");
        let other = Storage::local(tempfile::tempdir().unwrap().path(), b"another secret").unwrap();
        assert!(!other.verify("1/2/3", Variant::Original, 1000, &sig, 999), "another secret");
    }

    #[test]
    fn storage_uris_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Storage::open("local", dir.path(), b"k").unwrap().backend(), "local");
        assert!(Storage::open("ftp://x", dir.path(), b"k").is_err());
        assert!(Storage::open("s3://", dir.path(), b"k").is_err());
        assert!(Storage::open("s3://b?colour=blue", dir.path(), b"k").is_err());
    }

    #[tokio::test]
    async fn a_file_goes_in_by_chunks_and_comes_back_whole_or_by_range_and_is_deleted() {
        let (s, dir) = storage();
        let src = dir.path().join("src.bin");
        let data: Vec<u8> = (0..(3 * READ_CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let (c, a) = (Id::from_raw(7), Id::from_raw(8));
        let key = Storage::key(c, a, Variant::Original);
        s.put_file(&key, &src).await.unwrap();
        assert_eq!(s.size(&key).await.unwrap(), data.len() as u64);
        let all = s.get(&key, None).await.unwrap().bytes().await.unwrap();
        assert_eq!(all.as_ref(), data.as_slice());
        let part = s.get(&key, Some(10..20)).await.unwrap().bytes().await.unwrap();
        assert_eq!(part.as_ref(), &data[10..20]);
        assert_eq!(s.keys_of_channel(c).await.unwrap(), vec![format!("{c}/{a}/original")]);
        s.delete(c, a).await.unwrap();
        assert!(matches!(s.get(&key, None).await, Err(StorageError::NotFound)));
        s.delete(c, a).await.unwrap();
    }
}
