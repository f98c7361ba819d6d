//! `chorus`: one binary that runs the chat plane, voice signaling, the SFU, the web client and the
//! metrics endpoint, and the operator's commands (`chorus admin`, `backup`, `restore`, `ports`).
//! Configuration comes from flags, `CHORUS_*` variables and `chorus.toml`.

mod acme;
mod admin;
mod cluster;
mod commands;
mod config;
mod media_addr;
mod ports;
mod server;
mod stun;
mod tls;
mod turn;
mod voice;
mod web;

use clap::Parser;

use config::Command;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = config::Cli::parse();
    let command = cli.command.take();
    // Before the settings are read: the file it writes may be the one --config names.
    if let Some(Command::Init { domain }) = &command {
        let path = cli.config.clone().unwrap_or_else(|| "chorus.toml".into());
        if let Err(failure) = commands::init::write(&path, domain.as_deref()) {
            eprintln!("error: {}", failure.message);
            std::process::exit(failure.code);
        }
        return Ok(());
    }
    let mut config = config::Config::load(cli)?;
    let Some(command) = command else {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_new(&config.log)
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .init();
        return server::run(config).await;
    };
    // Commands print their results on stdout; only warnings are logged, to stderr.
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("warn").init();
    let result = match command {
        Command::Init { .. } => Ok(()),
        Command::Ports => {
            config.probe_stun();
            print!("{}", ports::report(&config));
            Ok(())
        }
        Command::Admin { json, command } => commands::admin::run(&config, command, json).await,
        Command::Backup { file } => commands::backup::backup(&config, &file).await,
        Command::Restore { file } => commands::backup::restore(&config, &file).await,
    };
    if let Err(failure) = result {
        eprintln!("error: {}", failure.message);
        std::process::exit(failure.code);
    }
    Ok(())
}
