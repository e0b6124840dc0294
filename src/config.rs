//! Configuration, read from the environment once at start-up and validated
//! there: a bad value stops the process with a message naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::SecretString;

/// Default database: a SQLite file in the working directory, created on
/// first start, so that `cargo run` needs nothing installed.
pub const DATABASE_URL_DEFAULT: &str = "sqlite://protodesk-credits.db?mode=rwc";
/// Default listen address: loopback only, so a development run is private.
pub const BIND_ADDR_DEFAULT: &str = "127.0.0.1:8080";
/// Default pool size. SQLite has one writer anyway; PostgreSQL instances
/// share the server's connection limit (100 by default), so several
/// instances of 10 fit.
pub const DATABASE_MAX_CONNECTIONS_DEFAULT: u32 = 10;

/// Default renewal schedule: second 0 of every minute, so a period's end
/// is recorded within a minute even for wallets nobody touches (writers
/// settle a wallet themselves before anything else).
pub const RENEWAL_CRON_DEFAULT: &str = "0 * * * * *";

/// Default of [`Config::event_bus_capacity`]: balance events of one wallet
/// the bus holds for a slow subscriber before it lags (and reads the
/// ledger instead).
pub const EVENT_BUS_CAPACITY_DEFAULT: usize = 64;
/// Default interval of the server's WebSocket keep-alive pings.
pub const WS_KEEPALIVE_DEFAULT: Duration = Duration::from_secs(30);

/// How webhooks are delivered (`docs/design/webhooks.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSettings {
    /// `WEBHOOK_DELIVERY`: whether this instance runs a delivery worker
    /// (default on; PostgreSQL instances share the work).
    pub deliver: bool,
    /// `WEBHOOK_ALLOW_PRIVATE`: `on` accepts `http` and private, loopback
    /// and link-local targets (development and tests; default off).
    pub allow_private: bool,
    /// `WEBHOOK_TIMEOUT_MS`: how long an attempt waits for a 2xx.
    pub timeout: Duration,
    /// `WEBHOOK_RETRY_BASE_MS`: the first retry's delay; each next one
    /// doubles, up to [`WEBHOOK_RETRY_CAP`], with ±10% jitter.
    pub retry_base: Duration,
    /// `WEBHOOK_MAX_ATTEMPTS`: attempts before a delivery is FAILED.
    pub max_attempts: u32,
    /// `WEBHOOK_POLL_MS`: how often an idle worker looks for due deliveries.
    pub poll: Duration,
}

/// Longest delay between two attempts.
pub const WEBHOOK_RETRY_CAP: Duration = Duration::from_secs(6 * 3600);

impl Default for WebhookSettings {
    /// Sixteen attempts 5 s, 10 s, 20 s … apart (capped at six hours): about
    /// 23 hours from the first to the last.
    fn default() -> Self {
        Self {
            deliver: true,
            allow_private: false,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(5),
            max_attempts: 16,
            poll: Duration::from_millis(500),
        }
    }
}

impl WebhookSettings {
    /// Reads the webhook settings.
    fn from_env() -> anyhow::Result<Self> {
        let defaults = Self::default();
        Ok(Self {
            deliver: switch("WEBHOOK_DELIVERY")?,
            allow_private: match optional("WEBHOOK_ALLOW_PRIVATE")?.as_deref() {
                None | Some("off") => false,
                Some("on") => true,
                Some(_) => bail!("WEBHOOK_ALLOW_PRIVATE must be on or off"),
            },
            timeout: bounded("WEBHOOK_TIMEOUT_MS", 100..=60_000)?
                .map_or(defaults.timeout, Duration::from_millis),
            retry_base: bounded("WEBHOOK_RETRY_BASE_MS", 10..=3_600_000)?
                .map_or(defaults.retry_base, Duration::from_millis),
            max_attempts: bounded("WEBHOOK_MAX_ATTEMPTS", 1..=50)?.unwrap_or(defaults.max_attempts),
            poll: bounded("WEBHOOK_POLL_MS", 10..=60_000)?.map_or(defaults.poll, Duration::from_millis),
        })
    }
}

/// How spends are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitSettings {
    /// Most spends in one transaction.
    pub max_batch: usize,
    /// Longest wait for company once other spends are arriving.
    pub window: Duration,
    /// Batches in flight at once (each holds one connection); `None`: one
    /// on SQLite (a single writer), [`POSTGRES_WORKERS_DEFAULT`] on
    /// PostgreSQL.
    pub workers: Option<usize>,
}

/// Default for [`GroupCommitSettings::max_batch`].
pub const MAX_BATCH_DEFAULT: usize = 256;
/// Default for [`GroupCommitSettings::window`].
pub const WINDOW_DEFAULT: Duration = Duration::ZERO;
/// Default batches in flight on PostgreSQL.
pub const POSTGRES_WORKERS_DEFAULT: usize = 2;

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self {
            max_batch: MAX_BATCH_DEFAULT,
            window: WINDOW_DEFAULT,
            workers: None,
        }
    }
}

/// Where token signatures are checked against.
#[derive(Debug, Clone)]
pub enum JwtKeySource {
    /// `JWT_SECRET`: HS256 with this shared secret.
    Secret(SecretString),
    /// `JWT_PUBLIC_KEY_FILE`: RS256 or ES256, implied by the PEM key's type.
    PublicKeyFile(PathBuf),
    /// `JWT_KEYS_FILE`: a JWK set; the token's `kid` picks the key (and its
    /// algorithm), for key rotation.
    KeySetFile(PathBuf),
}

/// How tokens are verified.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The key (exactly one source).
    pub key: JwtKeySource,
    /// `JWT_ISSUER`: when set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`: when set, tokens must carry this `aud`.
    pub audience: Option<String>,
    /// `JWT_MAX_LIFETIME_SECONDS`: tokens whose `exp` is further away are
    /// refused, so a leaked long-lived token is not a permanent key
    /// (default [`JWT_MAX_LIFETIME_DEFAULT`]).
    pub max_lifetime: Duration,
}

/// Default longest token lifetime: a day.
pub const JWT_MAX_LIFETIME_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// Default header-read and idle keep-alive timeout of an HTTP connection.
pub const HTTP_IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(20);

/// Where the ledger is stored: all that `migrate`, `verify` and `renew`
/// need.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…`
    /// (default [`DATABASE_URL_DEFAULT`]).
    pub url: String,
    /// `DATABASE_SCHEMA`: PostgreSQL schema to use (default: the server's
    /// search path). Tests give each run its own schema.
    pub schema: Option<String>,
    /// `DATABASE_MAX_CONNECTIONS` (default [`DATABASE_MAX_CONNECTIONS_DEFAULT`]).
    pub max_connections: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS`: how long a request waits for a
    /// connection before it is answered SERVICE_UNAVAILABLE (default
    /// [`DATABASE_ACQUIRE_TIMEOUT_DEFAULT`]).
    pub acquire_timeout: Duration,
}

/// Default wait for a pooled connection.
pub const DATABASE_ACQUIRE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: DATABASE_URL_DEFAULT.to_owned(),
            schema: None,
            max_connections: DATABASE_MAX_CONNECTIONS_DEFAULT,
            acquire_timeout: DATABASE_ACQUIRE_TIMEOUT_DEFAULT,
        }
    }
}

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database.
    pub database: DatabaseConfig,
    /// `BIND_ADDR` (default [`BIND_ADDR_DEFAULT`]); port 0 picks a free port.
    pub bind_addr: SocketAddr,
    /// Token verification.
    pub jwt: JwtConfig,
    /// `EVENT_BUS_CAPACITY`: balance events of one wallet kept for a slow
    /// subscriber before it falls back to reading the ledger (default
    /// [`EVENT_BUS_CAPACITY_DEFAULT`]).
    pub event_bus_capacity: usize,
    /// `RENEWAL_CRON`: six-field cron (UTC) of the renewal job (default
    /// [`RENEWAL_CRON_DEFAULT`]); `off` runs no scheduler on this instance.
    pub renewal_cron: Option<String>,
    /// Spends' group commit; `None` (`SPEND_GROUP_COMMIT=off`): one
    /// transaction per spend. `SPEND_BATCH_MAX`, `SPEND_BATCH_WINDOW_US`,
    /// `SPEND_BATCH_WORKERS` tune it.
    pub group_commit: Option<GroupCommitSettings>,
    /// `GRAPHQL_INTROSPECTION`: `off` refuses `__schema` and `__type`
    /// (default `on`: the schema is public in `schema.graphql` anyway).
    pub introspection: bool,
    /// `WS_KEEPALIVE_SECONDS`: how often an idle WebSocket is pinged; one
    /// left unanswered until the next ping closes it (default
    /// [`WS_KEEPALIVE_DEFAULT`]).
    pub ws_keepalive: std::time::Duration,
    /// `HTTP_IDLE_TIMEOUT_SECONDS`: how long a connection may take to send
    /// a request's headers, and stay idle between requests, before it is
    /// closed (default [`HTTP_IDLE_TIMEOUT_DEFAULT`]). Behind a load
    /// balancer, set it above the balancer's own idle timeout.
    pub http_idle_timeout: Duration,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins (`https://app.example.com`)
    /// whose pages may call the API from a browser; the WebSocket upgrade
    /// checks `Origin` against the same list when it is set (default: none).
    pub cors_allowed_origins: Vec<String>,
    /// `STRIPE_WEBHOOK_SECRET`: the signing secret (`whsec_…`) of the
    /// Stripe endpoint that posts to `/webhooks/stripe`; unset, that path
    /// answers 404.
    pub stripe_webhook_secret: Option<SecretString>,
    /// Outbound webhooks (`WEBHOOK_*`).
    pub webhooks: WebhookSettings,
    /// `STRIPE_PRICE_PLANS`: `price_id:PLAN` pairs, comma-separated, written
    /// into the catalogue's price map at start.
    pub stripe_price_plans: Vec<(String, String)>,
    /// `SUBSCRIPTION_GRACE_HOURS`: how long a past-due subscription keeps
    /// its plan (default [`DEFAULT_SUBSCRIPTION_GRACE_HOURS`]).
    pub subscription_grace: chrono::Duration,
    /// `RATE_LIMIT_SUBJECT_PER_SECOND` and `RATE_LIMIT_WORKSPACE_PER_SECOND`
    /// (defaults [`RATE_LIMIT_SUBJECT_DEFAULT`], [`RATE_LIMIT_WORKSPACE_DEFAULT`];
    /// `off` for none): requests a token's subject, and a workspace's tokens
    /// together, may send per second (as many at once). Operators are not limited.
    pub rate_limits: RateLimits,
    /// `TRUSTED_DOCUMENTS_MANIFEST`: the trusted-documents manifest (the
    /// client kit's `trusted-documents.json`); `TRUSTED_DOCUMENTS=enforce`
    /// refuses free-form documents but from operators (default `allow`).
    pub trusted_documents: TrustedDocumentsConfig,
}

/// Where the trusted documents are, and whether only they are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedDocumentsConfig {
    pub manifest: Option<PathBuf>,
    pub enforce: bool,
}

impl TrustedDocumentsConfig {
    fn from_env() -> anyhow::Result<Self> {
        let manifest = optional("TRUSTED_DOCUMENTS_MANIFEST")?.map(PathBuf::from);
        let enforce = match optional("TRUSTED_DOCUMENTS")?.as_deref() {
            None | Some("allow") => false,
            Some("enforce") => true,
            Some(other) => bail!("TRUSTED_DOCUMENTS must be allow or enforce, not {other:?}"),
        };
        if enforce && manifest.is_none() {
            bail!(
                "TRUSTED_DOCUMENTS=enforce needs TRUSTED_DOCUMENTS_MANIFEST (the client kit's trusted-documents.json)"
            );
        }
        Ok(Self { manifest, enforce })
    }
}

/// The request rates allowed; `None`: not limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per second one subject of one workspace may send (its
    /// burst: as many at once).
    pub per_subject: Option<std::num::NonZeroU32>,
    /// Requests per second one workspace's tokens may send together.
    pub per_workspace: Option<std::num::NonZeroU32>,
}

/// Requests per second one subject of a workspace may send by default.
pub const RATE_LIMIT_SUBJECT_DEFAULT: u32 = 200;
/// Requests per second one workspace's tokens may send together by default.
pub const RATE_LIMIT_WORKSPACE_DEFAULT: u32 = 1_000;

/// A rate: `off`, or requests per second (1 to 1,000,000).
fn rate(name: &str, default: u32) -> anyhow::Result<Option<std::num::NonZeroU32>> {
    match optional(name)? {
        Some(value) if value.eq_ignore_ascii_case("off") => Ok(None),
        Some(value) => value
            .parse::<u32>()
            .ok()
            .filter(|rate| (1..=1_000_000).contains(rate))
            .and_then(std::num::NonZeroU32::new)
            .map(Some)
            .with_context(|| format!("{name} must be off or 1 to 1000000 requests per second")),
        None => Ok(std::num::NonZeroU32::new(default)),
    }
}

/// How long a past-due subscription keeps its plan by default: Stripe's
/// first retries of a failed invoice fall within three days.
pub const DEFAULT_SUBSCRIPTION_GRACE_HOURS: i64 = 72;

/// `STRIPE_PRICE_PLANS`: `price_1AbC:STARTER,price_2DeF:PRO`; only paid
/// plans of fixed allocation (STARTER, PRO, BUSINESS) may be sold so.
pub fn parse_price_plans(list: &str) -> anyhow::Result<Vec<(String, String)>> {
    list.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (price, plan) = pair
                .split_once(':')
                .with_context(|| format!("STRIPE_PRICE_PLANS: {pair} is not price_id:PLAN"))?;
            let (price, plan) = (price.trim(), plan.trim());
            if price.is_empty() || price.len() > 255 || !price.bytes().all(|b| b.is_ascii_graphic()) {
                bail!("STRIPE_PRICE_PLANS: {price:?} is not a price id");
            }
            if !["STARTER", "PRO", "BUSINESS"].contains(&plan) {
                bail!("STRIPE_PRICE_PLANS: {plan} is not STARTER, PRO or BUSINESS");
            }
            Ok((price.to_owned(), plan.to_owned()))
        })
        .collect()
}

/// An optional integer setting within `range`.
fn bounded<T>(name: &str, range: std::ops::RangeInclusive<T>) -> anyhow::Result<Option<T>>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match optional(name)? {
        None => Ok(None),
        Some(raw) => raw
            .parse::<T>()
            .ok()
            .filter(|n| range.contains(n))
            .map(Some)
            .with_context(|| {
                format!(
                    "{name} must be an integer from {} to {}",
                    range.start(),
                    range.end()
                )
            }),
    }
}

/// An `on`/`off` setting, `on` when unset.
fn switch(name: &str) -> anyhow::Result<bool> {
    match optional(name)?.as_deref() {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(_) => bail!("{name} must be on or off"),
    }
}

/// Reads the group commit settings.
fn group_commit_from_env() -> anyhow::Result<Option<GroupCommitSettings>> {
    if !switch("SPEND_GROUP_COMMIT")? {
        return Ok(None);
    }
    let defaults = GroupCommitSettings::default();
    Ok(Some(GroupCommitSettings {
        max_batch: bounded("SPEND_BATCH_MAX", 1..=10_000)?.unwrap_or(defaults.max_batch),
        window: bounded("SPEND_BATCH_WINDOW_US", 0..=100_000)?.map_or(defaults.window, Duration::from_micros),
        workers: bounded("SPEND_BATCH_WORKERS", 1..=64)?,
    }))
}

fn optional(name: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{name} is not valid UTF-8"),
    }
}

impl DatabaseConfig {
    /// Reads and validates the database settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let url = optional("DATABASE_URL")?.unwrap_or_else(|| DATABASE_URL_DEFAULT.to_owned());
        if !(url.starts_with("sqlite:") || url.starts_with("postgres")) {
            bail!("DATABASE_URL must start with sqlite: or postgres:// (got another scheme)");
        }
        let max_connections =
            bounded("DATABASE_MAX_CONNECTIONS", 1..=1000)?.unwrap_or(DATABASE_MAX_CONNECTIONS_DEFAULT);
        Ok(Self {
            url,
            schema: optional("DATABASE_SCHEMA")?,
            max_connections,
            acquire_timeout: bounded("DATABASE_ACQUIRE_TIMEOUT_MS", 10..=600_000)?
                .map_or(DATABASE_ACQUIRE_TIMEOUT_DEFAULT, Duration::from_millis),
        })
    }
}

impl Config {
    /// Reads and validates the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let database = DatabaseConfig::from_env()?;
        let bind_addr = optional("BIND_ADDR")?
            .unwrap_or_else(|| BIND_ADDR_DEFAULT.to_owned())
            .parse()
            .context("BIND_ADDR must be an address such as 127.0.0.1:8080")?;
        let key = match (
            optional("JWT_SECRET")?,
            optional("JWT_PUBLIC_KEY_FILE")?,
            optional("JWT_KEYS_FILE")?,
        ) {
            (Some(secret), None, None) => {
                if secret.len() < 16 {
                    bail!("JWT_SECRET must be at least 16 bytes");
                }
                JwtKeySource::Secret(SecretString::from(secret))
            }
            (None, Some(path), None) => JwtKeySource::PublicKeyFile(PathBuf::from(path)),
            (None, None, Some(path)) => JwtKeySource::KeySetFile(PathBuf::from(path)),
            (None, None, None) => bail!(
                "set JWT_SECRET (HS256), JWT_PUBLIC_KEY_FILE (RS256/ES256) or JWT_KEYS_FILE (a JWK set, keys chosen by kid); for a local try: JWT_SECRET=dev-secret-change-me cargo run"
            ),
            _ => bail!("set only one of JWT_SECRET, JWT_PUBLIC_KEY_FILE and JWT_KEYS_FILE"),
        };
        let renewal_cron = match optional("RENEWAL_CRON")? {
            None => Some(RENEWAL_CRON_DEFAULT.to_owned()),
            Some(value) if value.eq_ignore_ascii_case("off") => None,
            Some(value) => Some(value),
        };
        let event_bus_capacity =
            bounded("EVENT_BUS_CAPACITY", 1..=1_000_000)?.unwrap_or(EVENT_BUS_CAPACITY_DEFAULT);
        let introspection = switch("GRAPHQL_INTROSPECTION")?;
        let ws_keepalive = bounded("WS_KEEPALIVE_SECONDS", 1..=3600)?
            .map(std::time::Duration::from_secs)
            .unwrap_or(WS_KEEPALIVE_DEFAULT);
        let http_idle_timeout = bounded("HTTP_IDLE_TIMEOUT_SECONDS", 1..=3600)?
            .map_or(HTTP_IDLE_TIMEOUT_DEFAULT, Duration::from_secs);
        let cors_allowed_origins = match optional("CORS_ALLOWED_ORIGINS")? {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(parse_origin)
                .collect::<anyhow::Result<_>>()?,
        };
        Ok(Config {
            stripe_webhook_secret: optional("STRIPE_WEBHOOK_SECRET")?.map(SecretString::from),
            webhooks: WebhookSettings::from_env()?,
            stripe_price_plans: optional("STRIPE_PRICE_PLANS")?
                .map(|list| parse_price_plans(&list))
                .transpose()?
                .unwrap_or_default(),
            rate_limits: RateLimits {
                per_subject: rate("RATE_LIMIT_SUBJECT_PER_SECOND", RATE_LIMIT_SUBJECT_DEFAULT)?,
                per_workspace: rate("RATE_LIMIT_WORKSPACE_PER_SECOND", RATE_LIMIT_WORKSPACE_DEFAULT)?,
            },
            subscription_grace: chrono::Duration::hours(
                bounded("SUBSCRIPTION_GRACE_HOURS", 0..=2160)?.unwrap_or(DEFAULT_SUBSCRIPTION_GRACE_HOURS),
            ),
            trusted_documents: TrustedDocumentsConfig::from_env()?,
            introspection,
            ws_keepalive,
            http_idle_timeout,
            cors_allowed_origins,
            group_commit: group_commit_from_env()?,
            event_bus_capacity,
            renewal_cron,
            database,
            bind_addr,
            jwt: JwtConfig {
                key,
                issuer: optional("JWT_ISSUER")?,
                audience: optional("JWT_AUDIENCE")?,
                max_lifetime: bounded("JWT_MAX_LIFETIME_SECONDS", 60..=31_536_000)?
                    .map_or(JWT_MAX_LIFETIME_DEFAULT, Duration::from_secs),
            },
        })
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, no path, no
/// trailing slash.
fn parse_origin(origin: &str) -> anyhow::Result<String> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .with_context(|| format!("CORS_ALLOWED_ORIGINS: {origin} must start with https:// or http://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ']) {
        bail!("CORS_ALLOWED_ORIGINS: {origin} must be scheme://host[:port], without a path or wildcard");
    }
    Ok(origin.to_ascii_lowercase())
}
