//! `chorus backup FILE` and `chorus restore FILE`: the SQLite store and the voice secret in one file
//! (see `chat::store::backup`). MongoDB is backed up with mongodump (docs/operations.md).

use std::path::{Path, PathBuf};

use chat::store::backup::{self, BackupSummary};

use super::{Failure, hex};
use crate::config::Config;

/// The voice secret's key in the backup (hex of the file's bytes).
const VOICE_SECRET: &str = "voice_secret";

fn sqlite_file(config: &Config) -> Result<PathBuf, Failure> {
    chat::store::sqlite_path(&config.store, &config.data_dir).ok_or_else(|| {
        Failure::usage("chorus backup and restore handle the SQLite store; back up MongoDB with mongodump")
    })
}

pub async fn backup(config: &Config, file: &Path) -> Result<(), Failure> {
    let db = sqlite_file(config)?;
    let secret_file = config.data_dir.join("voice-secret");
    let secret = std::fs::read(&secret_file).ok().filter(|s| !s.is_empty()).map(|s| hex(&s));
    let mut extras = vec![("made_by", concat!("chorus ", env!("CARGO_PKG_VERSION")).to_string())];
    extras.extend(secret.map(|s| (VOICE_SECRET, s)));
    let dest = file.to_path_buf();
    let made = tokio::task::spawn_blocking(move || {
        let pairs: Vec<(&str, &str)> = extras.iter().map(|(k, v)| (*k, v.as_str())).collect();
        backup::backup(&db, &dest, &pairs)
    })
    .await
    .map_err(|e| Failure::failed(e.to_string()))?
    .map_err(|e| Failure::failed(format!("backup failed: {e}")))?;
    println!("backed up to {}: {}", file.display(), describe(&made));
    if config.voice_secret.is_some() {
        println!("note: the voice secret comes from the configuration and is not in the backup");
    }
    Ok(())
}

pub async fn restore(config: &Config, file: &Path) -> Result<(), Failure> {
    let db = sqlite_file(config)?;
    let secret_file = config.data_dir.join("voice-secret");
    if secret_file.exists() {
        return Err(Failure::failed(format!("{} exists; restore only into an empty data dir", secret_file.display())));
    }
    let source = file.to_path_buf();
    let (extras, found) = tokio::task::spawn_blocking(move || backup::restore(&source, &db))
        .await
        .map_err(|e| Failure::failed(e.to_string()))?
        .map_err(|e| Failure::failed(format!("restore failed: {e}")))?;
    if let Some((_, secret)) = extras.iter().find(|(k, _)| k == VOICE_SECRET) {
        let bytes = unhex(secret).ok_or_else(|| Failure::failed("the backup's voice secret is not hex"))?;
        write_private(&secret_file, &bytes).map_err(|e| Failure::failed(format!("writing the voice secret: {e}")))?;
    }
    println!("restored into {}: {}", config.data_dir.display(), describe(&found));
    Ok(())
}

fn describe(s: &BackupSummary) -> String {
    format!(
        "{} user(s), {} guild(s), {} message(s), schema {}, {} bytes; integrity ok",
        s.users, s.guilds, s.messages, s.schema_version, s.bytes
    )
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voice_secret_survives_hex() {
        let secret: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&secret)), Some(secret));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
