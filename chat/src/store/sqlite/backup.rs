//! Online backup and restore of the SQLite store (`chorus backup FILE`, `chorus restore FILE`).
//!
//! The backup is `VACUUM INTO`: one read transaction on the live database, so it is a consistent
//! snapshot of everything committed before it began, taken while the server keeps writing (WAL
//! readers do not block the writer). The copy is a plain SQLite file (rollback journal, not WAL) with
//! one extra table, `chorus_backup`, holding what else the data dir needs (the voice secret) and
//! where the copy came from. Restore checks the file's integrity and schema version, takes that
//! table out, and only then moves the file into place.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::migrations::SCHEMA_VERSION;
use crate::store::{StoreError, StoreResult};

/// The extra table's name; never a name the schema itself uses.
const META: &str = "chorus_backup";

/// What a backup holds, for the operator's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub schema_version: u32,
    pub users: u64,
    pub guilds: u64,
    pub messages: u64,
    pub bytes: u64,
}

fn sqlite(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

fn summary(c: &Connection, path: &Path) -> StoreResult<BackupSummary> {
    let count = |table: &str| -> StoreResult<u64> {
        let n: i64 = c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).map_err(sqlite)?;
        Ok(n.max(0) as u64)
    };
    Ok(BackupSummary {
        schema_version: c.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sqlite)?,
        users: count("users")?,
        guilds: count("guilds")?,
        messages: count("messages")?,
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    })
}

/// `PRAGMA integrity_check` must answer exactly "ok".
fn integrity(c: &Connection) -> StoreResult<()> {
    let answer: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| StoreError::Corrupt(format!("not a usable SQLite file: {e}")))?;
    if answer != "ok" {
        return Err(StoreError::Corrupt(format!("integrity check failed: {answer}")));
    }
    Ok(())
}

/// Copies the live database at `db` to `dest` (which must not exist), with `extras` (key, value) in
/// the copy's `chorus_backup` table. Blocking.
pub fn backup(db: &Path, dest: &Path, extras: &[(&str, &str)]) -> StoreResult<BackupSummary> {
    if !db.exists() {
        return Err(StoreError::Backend(format!("no database at {}", db.display())));
    }
    // Created empty first (VACUUM INTO accepts an empty file), owner-only: the copy holds password and
    // session-token hashes and the voice secret. create_new also closes the gap between a check and the write.
    let mut create = std::fs::OpenOptions::new();
    create.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        create.mode(0o600);
    }
    create.open(dest).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            StoreError::Backend(format!("{} exists; a backup never overwrites a file", dest.display()))
        }
        _ => StoreError::Backend(format!("creating {}: {e}", dest.display())),
    })?;
    let source = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sqlite)?;
    source.busy_timeout(std::time::Duration::from_secs(10)).map_err(sqlite)?;
    let dest_text = dest.to_str().ok_or_else(|| StoreError::Backend("the backup path is not UTF-8".into()))?;
    if let Err(e) = source.execute("VACUUM INTO ?1", [dest_text]) {
        let _ = std::fs::remove_file(dest);
        return Err(sqlite(e));
    }
    drop(source);

    let copy = Connection::open(dest).map_err(sqlite)?;
    let result = (|| {
        // One self-contained file: no -wal beside it to forget when it is copied off the machine.
        copy.pragma_update(None, "journal_mode", "DELETE").map_err(sqlite)?;
        copy.execute_batch(&format!("CREATE TABLE {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT"))
            .map_err(sqlite)?;
        for (k, v) in extras {
            copy.execute(&format!("INSERT INTO {META} (key, value) VALUES (?1, ?2)"), params![k, v]).map_err(sqlite)?;
        }
        integrity(&copy)?;
        summary(&copy, dest)
    })();
    drop(copy);
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

/// Checks the backup at `file` and puts it at `db` (which must not exist); returns its extras and
/// summary. The file is copied and checked beside `db` first, so a failed restore leaves nothing.
pub fn restore(file: &Path, db: &Path) -> StoreResult<(Vec<(String, String)>, BackupSummary)> {
    if db.exists() {
        return Err(StoreError::Backend(format!(
            "{} exists; restore only into an empty data dir (move the old database away first)",
            db.display()
        )));
    }
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
    }
    let staging = db.with_extension("restoring");
    std::fs::copy(file, &staging).map_err(|e| StoreError::Backend(format!("reading {}: {e}", file.display())))?;
    let checked = check(&staging);
    match checked {
        Ok(found) => {
            std::fs::rename(&staging, db).map_err(|e| StoreError::Backend(format!("moving into place: {e}")))?;
            Ok(found)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            Err(e)
        }
    }
}

fn check(path: &Path) -> StoreResult<(Vec<(String, String)>, BackupSummary)> {
    let c = Connection::open(path).map_err(|e| StoreError::Backend(format!("not an SQLite file: {e}")))?;
    integrity(&c)?;
    let version: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sqlite)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "the backup has schema version {version}, newer than this build's {SCHEMA_VERSION}: restore it with a newer Chorus"
        )));
    }
    let has_meta: Option<String> = c
        .query_row("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1", [META], |r| r.get(0))
        .optional()
        .map_err(sqlite)?;
    if has_meta.is_none() {
        return Err(StoreError::Backend("not a Chorus backup (no chorus_backup table)".into()));
    }
    let extras = c
        .prepare(&format!("SELECT key, value FROM {META} ORDER BY key"))
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>())
        .map_err(sqlite)?;
    c.execute_batch(&format!("DROP TABLE {META}")).map_err(sqlite)?;
    // Back to the journal mode the store runs in.
    c.pragma_update(None, "journal_mode", "WAL").map_err(sqlite)?;
    let found = summary(&c, path)?;
    Ok((extras, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_db(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("chorus.db");
        let mut c = Connection::open(&path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        super::super::migrations::migrate(&mut c).unwrap();
        c.execute(
            "INSERT INTO users (id, username, username_key, password_hash, created_at) VALUES (1, 'a', 'a', 'h', 0)",
            [],
        )
        .unwrap();
        path
    }

    #[test]
    fn a_backup_restores_with_its_extras_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let db = live_db(dir.path());
        let file = dir.path().join("backup.db");
        let made = backup(&db, &file, &[("voice_secret", "s3cret")]).unwrap();
        assert_eq!((made.users, made.schema_version), (1, SCHEMA_VERSION));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the copy holds secrets: owner only");
        }
        let target = dir.path().join("restored/chorus.db");
        let (extras, found) = restore(&file, &target).unwrap();
        assert_eq!(extras, vec![("voice_secret".to_string(), "s3cret".to_string())]);
        assert_eq!(found.users, 1);
        let c = Connection::open(&target).unwrap();
        let meta: i64 =
            c.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'chorus_backup'", [], |r| r.get(0)).unwrap();
        assert_eq!(meta, 0, "the restored database is the store's, without the backup's own table");
    }

    #[test]
    fn backup_and_restore_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let db = live_db(dir.path());
        let file = dir.path().join("backup.db");
        std::fs::write(&file, "precious").unwrap();
        assert!(backup(&db, &file, &[]).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");
        std::fs::remove_file(&file).unwrap();
        backup(&db, &file, &[]).unwrap();
        assert!(restore(&file, &db).is_err(), "the live database is not replaced");
    }

    #[test]
    fn a_file_that_is_not_a_backup_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![0x42; 8192]).unwrap();
        let target = dir.path().join("data/chorus.db");
        assert!(restore(&junk, &target).is_err());
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        let plain = live_db(&other);
        assert!(restore(&plain, &target).unwrap_err().to_string().contains("not a Chorus backup"));
        assert!(!target.exists());
        assert!(!target.with_extension("restoring").exists());
    }
}
