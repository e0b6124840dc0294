//! The `protodesk-credits` binary: serve (default), mint a development
//! token, or print the schema.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use protodesk_credits::auth::{Claims, mint_hs256};
use protodesk_credits::config::Config;
use protodesk_credits::domain::clock::SystemClock;
use protodesk_credits::startup::{App, shutdown_signal};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "protodesk-credits",
    version,
    about = "Meters and bills Protodesk AI credits"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve GraphQL over HTTP and WebSocket (the default).
    Serve,
    /// Mint a development token signed with JWT_SECRET (HS256).
    Token {
        /// agent, service, admin or operator.
        #[arg(long, default_value = "operator")]
        role: String,
        /// The workspace the token is for (not needed for operator).
        #[arg(long)]
        workspace: Option<String>,
        /// The subject recorded as the actor of ledger rows.
        #[arg(long, default_value = "dev")]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
    /// Print the GraphQL schema (SDL), as checked in at schema.graphql.
    Sdl,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tokio_cron_scheduler=warn,sqlx=warn")),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = Config::from_env()?;
            let app = App::build(&config, Arc::new(SystemClock)).await?;
            let address = app.local_addr()?;
            tracing::info!(%address, "serving GraphQL at http://{address}/graphql (GraphiQL at http://{address}/)");
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Token {
            role,
            workspace,
            sub,
            ttl,
        } => {
            let secret =
                std::env::var("JWT_SECRET").context("token needs JWT_SECRET, the same the server uses")?;
            let claims = Claims {
                sub,
                workspace_id: workspace,
                role,
                exp: chrono::Utc::now().timestamp() + ttl,
                iss: std::env::var("JWT_ISSUER").ok(),
                aud: std::env::var("JWT_AUDIENCE").ok(),
            };
            println!("{}", mint_hs256(&secret, &claims)?);
            Ok(())
        }
        Command::Sdl => {
            print!("{}", protodesk_credits::graphql::sdl());
            Ok(())
        }
    }
}
