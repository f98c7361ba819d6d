//! `chorus admin …`: users, instance invites and guilds, on the configured store. Runs beside a live
//! server as well as on a stopped one (see `chat::operator` for how a running instance notices).

use std::io::BufRead;

use chat::operator::{GuildSummary, Operator, UserSummary};
use serde::Serialize;

use super::Failure;
use crate::config::{AdminCommand, Config, GuildCommand, InviteCommand, UserCommand};

/// Snowflake node id of ids minted by the CLI: the top of the range, which a server node should not
/// use (docs/operations.md), so ids made here never collide with a running node's.
pub const CLI_NODE_ID: u16 = 1023;

pub async fn run(config: &Config, command: AdminCommand, json: bool) -> Result<(), Failure> {
    // A mistyped --data-dir must not quietly get a new empty database; only creating the first
    // account before the first start may make one.
    let creates = matches!(command, AdminCommand::User { command: UserCommand::Create { .. } });
    if let Some(db) = chat::store::sqlite_path(&config.store, &config.data_dir)
        && !creates
        && !db.exists()
    {
        return Err(Failure::failed(format!("no database at {} (is --data-dir right?)", db.display())));
    }
    let store = chat::store::open(&config.store, &config.data_dir).await.map_err(Failure::store)?;
    let op = Operator::new(store.clone(), CLI_NODE_ID);
    let out = Output { json };
    let result = match command {
        AdminCommand::User { command } => user(&op, command, &out, &config.admins).await,
        AdminCommand::Invite { command: InviteCommand::Create { uses, expires } } => {
            let ttl = expires.map(|s| chrono::Duration::seconds(s.min(10 * 365 * 86_400) as i64));
            let invite = op.create_invite(uses, ttl).await.map_err(Failure::chat)?;
            out.one(&invite, || {
                let uses = invite.max_uses.map_or("unlimited uses".to_string(), |n| format!("{n} use(s)"));
                let expires = invite.expires_at.map_or("never expires".to_string(), |t| format!("expires {t}"));
                format!("{} ({uses}, {expires})", invite.code)
            });
            Ok(())
        }
        AdminCommand::Guild { command } => guild(&op, config, command, &out).await,
    };
    // SQLite: make every acknowledged change durable before the process exits.
    let _ = store.flush().await;
    result
}

async fn user(op: &Operator, command: UserCommand, out: &Output, named_admins: &[String]) -> Result<(), Failure> {
    match command {
        UserCommand::Create { name, password_stdin, admin } => {
            let password = read_password(password_stdin)?;
            let u = op.create_user(&name, &password, admin).await.map_err(Failure::chat)?;
            out.one(&u, || format!("created {}", describe(&u)));
        }
        UserCommand::List => {
            let users = op.list_users().await.map_err(Failure::chat)?;
            out.many(&users, describe);
        }
        UserCommand::ResetPassword { name, password_stdin } => {
            let password = read_password(password_stdin)?;
            let revoked = op.reset_password(&name, &password).await.map_err(Failure::chat)?;
            out.one(&serde_json::json!({"username": name, "sessions_revoked": revoked}), || {
                format!("password of {name} reset; {revoked} session(s) logged out")
            });
        }
        UserCommand::SetAdmin { name, revoke } => {
            let u = op.set_admin(&name, !revoke).await.map_err(Failure::chat)?;
            out.one(&u, || {
                format!("{} is {}an instance admin", u.user.username, if u.admin { "" } else { "no longer " })
            });
            // The flag is one of three ways to be an admin; say when another one still holds.
            if revoke {
                if op.is_first_user(&name).await.map_err(Failure::chat)? {
                    eprintln!("note: {name} is the first registered user, which stays an admin");
                } else if named_admins.contains(&name.to_lowercase()) {
                    eprintln!("note: {name} is named in --admins (the admins setting), which keeps it an admin");
                }
            }
        }
        UserCommand::Disable { name } => {
            let (u, revoked) = op.set_disabled(&name, true).await.map_err(Failure::chat)?;
            out.one(&serde_json::json!({"user": u, "sessions_revoked": revoked}), || {
                format!("{} disabled; {revoked} session(s) revoked", u.user.username)
            });
        }
        UserCommand::Enable { name } => {
            let (u, _) = op.set_disabled(&name, false).await.map_err(Failure::chat)?;
            out.one(&u, || format!("{} enabled", u.user.username));
        }
    }
    Ok(())
}

async fn guild(op: &Operator, config: &Config, command: GuildCommand, out: &Output) -> Result<(), Failure> {
    match command {
        GuildCommand::List => {
            let guilds = op.list_guilds().await.map_err(Failure::chat)?;
            out.many(&guilds, |g: &GuildSummary| {
                format!("{}  {}  owner {}  {} member(s)", g.guild.id, g.guild.name, g.guild.owner_id, g.members)
            });
        }
        GuildCommand::Delete { id } => {
            let id: chat::Id = id.parse().map_err(|_| Failure::usage(format!("{id:?} is not a guild id")))?;
            let (g, channels) = op.delete_guild(id).await.map_err(Failure::chat)?;
            // Its attachments go too (the storage's URLs are never signed here: any key opens it).
            match chat::attachments::Storage::open(&config.upload_store, &config.data_dir, b"admin") {
                Ok(storage) => {
                    for c in channels {
                        if let Err(e) = storage.delete_channel(c).await {
                            eprintln!("warning: attachments of channel {c} not removed: {e}");
                        }
                    }
                }
                Err(e) => eprintln!("warning: attachment storage not opened ({e}); its files stay"),
            }
            out.one(&g, || format!("deleted guild {} ({})", g.id, g.name));
        }
    }
    Ok(())
}

fn describe(u: &UserSummary) -> String {
    let mut flags = Vec::new();
    if u.admin {
        flags.push("admin");
    }
    if u.disabled {
        flags.push("disabled");
    }
    let flags = if flags.is_empty() { String::new() } else { format!("  [{}]", flags.join(", ")) };
    format!("{}  {}{flags}", u.user.id, u.user.username)
}

/// A password comes from standard input only: on the command line every user of the machine can read
/// it in the process list.
fn read_password(from_stdin: bool) -> Result<String, Failure> {
    if !from_stdin {
        return Err(Failure::usage("give the password on standard input with --password-stdin"));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure::usage(format!("reading the password: {e}")))?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(Failure::usage("no password on standard input"));
    }
    Ok(password)
}

/// Human lines or JSON, on standard output.
struct Output {
    json: bool,
}

impl Output {
    fn one<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        if self.json {
            println!("{}", serde_json::to_string(value).unwrap_or_default());
        } else {
            println!("{}", text());
        }
    }

    fn many<T: Serialize>(&self, values: &[T], line: impl Fn(&T) -> String) {
        if self.json {
            println!("{}", serde_json::to_string(values).unwrap_or_default());
        } else {
            for v in values {
                println!("{}", line(v));
            }
        }
    }
}
