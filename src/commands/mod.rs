//! The subcommands besides running the server: `chorus init`, `chorus admin …`, `chorus backup`, `chorus restore`
//! (and `chorus ports`, in `ports.rs`). Each prints its result on standard output, its error on
//! standard error, and exits with a code a script can test (`Failure::code`).

pub mod admin;
pub mod backup;
pub mod init;

use std::fmt::Write;

/// Why a command failed, and the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    /// The store or a file could not be used.
    pub const FAILED: i32 = 1;
    /// A bad argument or input (clap also exits 2 for bad usage).
    pub const USAGE: i32 = 2;
    /// No such user or guild.
    pub const NOT_FOUND: i32 = 3;
    /// The username is taken.
    pub const CONFLICT: i32 = 4;

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure { code: Self::USAGE, message: message.into() }
    }

    pub fn failed(message: impl Into<String>) -> Failure {
        Failure { code: Self::FAILED, message: message.into() }
    }

    pub fn store(e: chat::store::StoreError) -> Failure {
        Failure::failed(format!("the store: {e}"))
    }

    pub fn chat(e: chat::Error) -> Failure {
        match e {
            chat::Error::NotFound(what) => Failure { code: Self::NOT_FOUND, message: format!("no such {what}") },
            chat::Error::Conflict(_, message) => Failure { code: Self::CONFLICT, message: message.to_string() },
            chat::Error::Validation(fields) => {
                let mut message = String::new();
                for (field, problem) in fields {
                    let _ = write!(message, "{}{field}: {problem}", if message.is_empty() { "" } else { "; " });
                }
                Failure::usage(message)
            }
            chat::Error::BadRequest { message, .. } => Failure::usage(message),
            other => Failure::failed(other.to_string()),
        }
    }
}

/// Lower-case hex of `bytes` (secrets in TOML and in the backup's text table).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
