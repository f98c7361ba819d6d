//! `chorus`: one binary that runs the chat plane, voice signaling, the SFU, the web client and the
//! metrics endpoint. Configuration comes from flags, `CHORUS_*` variables and `chorus.toml`.

mod admin;
mod config;
mod server;
mod voice;
mod web;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = config::Config::load(config::Cli::parse())?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    server::run(config).await
}
