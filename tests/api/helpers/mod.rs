//! The test harness: a real app on port 0 over a fresh database (a SQLite
//! file in a temporary directory, or a PostgreSQL schema of its own), a
//! manual clock, a GraphQL client, token minting, and the ledger audit
//! that runs after every scenario.

pub mod client;
pub mod server;
pub mod ws;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use protodesk_credits::auth::{Claims, mint_hs256};
use protodesk_credits::clock::ManualClock;
use protodesk_credits::config::{Config, DatabaseConfig, JwtConfig, JwtKeySource};
use protodesk_credits::service::{GroupCommitSettings, Ledger};
use protodesk_credits::startup::App;
use protodesk_credits::store;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use secrecy::SecretString;
use tokio::sync::oneshot;

/// The HS256 secret every test app verifies with.
pub const TEST_SECRET: &str = "test-secret-at-least-16-bytes";
/// The Stripe endpoint's signing secret every test server has.
pub const STRIPE_SECRET: &str = "whsec_test_protodesk";
/// The Stripe prices the test deployment sells (`STRIPE_PRICE_PLANS`).
pub const STRIPE_PRICES: [(&str, &str); 3] = [
    ("price_1QStarterMonthly", "STARTER"),
    ("price_1QProMonthly", "PRO"),
    ("price_1QBusinessMonthly", "BUSINESS"),
];

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file, WAL, like production's default.
    Sqlite,
    /// A schema of its own on the PostgreSQL at `TEST_DATABASE_URL`.
    Postgres,
}

/// The PostgreSQL server the tests use.
pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Waits (up to 10 s) until at least `count` connections LISTEN on the
/// event channel of PostgreSQL schema `schema`: each instance's relay
/// listens once it has started, so a test can wait for that rather than
/// sleep.
pub async fn wait_for_listeners(schema: &str, count: usize) {
    let admin = sea_orm::Database::connect(postgres_url()).await.unwrap();
    let channel = format!("credits_{schema}");
    for _ in 0..500 {
        let listening = admin
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%{channel}%' AND pid <> pg_backend_pid()"
                ),
            ))
            .await
            .unwrap()
            .len();
        if listening >= count {
            admin.close().await.ok();
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("fewer than {count} relays listen on {channel} after 10 s");
}

/// Options of a test app beyond the defaults.
#[derive(Clone, Default)]
pub struct Options {
    /// Replaces the HS256 secret with another key source.
    pub key: Option<JwtKeySource>,
    /// `JWT_ISSUER`.
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`.
    pub audience: Option<String>,
    /// The clock to use (a sibling shares its first instance's).
    pub clock: Option<ManualClock>,
    /// `EVENT_BUS_CAPACITY` (default: production's).
    pub event_bus_capacity: Option<usize>,
    /// `RENEWAL_CRON`; tests run without a scheduler unless they ask.
    pub renewal_cron: Option<String>,
    /// One transaction per spend instead of group commit (the default).
    pub unbatched: bool,
    /// Group commit settings (default: production's).
    pub group_commit: Option<GroupCommitSettings>,
    /// `GRAPHQL_INTROSPECTION=off`.
    pub no_introspection: bool,
    /// `TRUSTED_DOCUMENTS_MANIFEST` and `TRUSTED_DOCUMENTS`.
    pub trusted_documents: Option<protodesk_credits::config::TrustedDocumentsConfig>,
    /// PostgreSQL: reach the server at this URL instead (a proxy). SQLite:
    /// this database instead of a fresh file.
    pub database_url: Option<String>,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS`.
    pub acquire_timeout: Option<std::time::Duration>,
    /// `WS_KEEPALIVE_SECONDS`.
    pub ws_keepalive: Option<std::time::Duration>,
    /// `JWT_MAX_LIFETIME_SECONDS`.
    pub max_token_lifetime: Option<std::time::Duration>,
    /// `HTTP_IDLE_TIMEOUT_SECONDS`.
    pub http_idle_timeout: Option<std::time::Duration>,
    /// `CORS_ALLOWED_ORIGINS`.
    pub cors_allowed_origins: Vec<String>,
    /// `WEBHOOK_*` (default: no delivery worker, private targets allowed).
    pub webhooks: Option<protodesk_credits::config::WebhookSettings>,
    /// Request rates (default: none, so scenarios may send as fast as they
    /// like; the rate limiter has its own scenarios).
    pub rate_limits: Option<protodesk_credits::config::RateLimits>,
}

/// A running app and what a test needs to talk to it.
#[derive(Clone)]
pub struct TestApp {
    pub backend: Backend,
    pub address: String,
    pub http: reqwest::Client,
    pub clock: ManualClock,
    pub ledger: Ledger,
    /// The server's pool, for reading and damaging the database directly.
    pub db: DatabaseConnection,
    _shutdown: Arc<ShutdownOnDrop>,
    _directory: Arc<tempfile::TempDir>,
    pub pg_schema: Option<String>,
    /// The `DATABASE_URL` the app runs on (for the binary's commands).
    pub database_url: String,
}

struct ShutdownOnDrop(std::sync::Mutex<Option<oneshot::Sender<()>>>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        if let Some(sender) = self.0.lock().unwrap().take() {
            let _ = sender.send(());
        }
    }
}

/// xorshift64*: reproducible from its seed.
pub struct Random(pub u64);

impl Random {
    /// The next number of the stream.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `SEED` from the environment, or `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(default)
}

/// The instant every test's clock starts at.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 31, 10, 0, 0).unwrap()
}

static SCHEMA_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Drops `test_` schemas left by runs that ended more than an hour ago
/// (their names carry their creation time), without touching live ones.
async fn sweep_old_schemas() {
    let db = Database::connect(postgres_url()).await.unwrap_or_else(|error| {
        panic!(
            "PostgreSQL is required for the postgres tests and is not reachable at {} ({error}). \
             Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set TEST_DATABASE_URL.",
            postgres_url()
        )
    });
    let cutoff = Utc::now().timestamp() - 3600;
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'test\\_%'",
        ))
        .await
        .unwrap();
    for row in rows {
        let name: String = row.try_get("", "nspname").unwrap();
        let created = name.split('_').nth(1).and_then(|part| part.parse::<i64>().ok());
        if created.is_some_and(|created| created < cutoff) {
            let _ = db
                .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .await;
        }
    }
    db.close().await.ok();
}

impl TestApp {
    /// Spawns an app on `backend` with the default options.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, Options::default()).await
    }

    /// Spawns an app on `backend`.
    pub async fn spawn_with(backend: Backend, options: Options) -> TestApp {
        let directory = tempfile::tempdir().unwrap();
        let (database_url, pg_schema) = match backend {
            Backend::Sqlite => (
                options.database_url.clone().unwrap_or_else(|| {
                    format!(
                        "sqlite://{}?mode=rwc",
                        directory.path().join("credits.db").display()
                    )
                }),
                None,
            ),
            Backend::Postgres => {
                static SWEEP: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
                SWEEP.get_or_init(sweep_old_schemas).await;
                let schema = format!(
                    "test_{}_{}_{}",
                    Utc::now().timestamp(),
                    std::process::id(),
                    SCHEMA_COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                (
                    options.database_url.clone().unwrap_or_else(postgres_url),
                    Some(schema),
                )
            }
        };
        Self::spawn_on(backend, database_url, pg_schema, directory, options).await
    }

    /// Spawns a second instance over the same database as `self`, sharing
    /// its clock (two servers behind one load balancer).
    pub async fn spawn_sibling(&self) -> TestApp {
        Self::spawn_beside(
            self,
            Options {
                clock: Some(self.clock.clone()),
                ..Options::default()
            },
        )
        .await
    }

    /// Spawns another instance over the same database as `first`.
    pub async fn spawn_beside(first: &TestApp, options: Options) -> TestApp {
        Self::spawn_on(
            first.backend,
            first.database_url.clone(),
            first.pg_schema.clone(),
            tempfile::tempdir().unwrap(),
            options,
        )
        .await
    }

    async fn spawn_on(
        backend: Backend,
        database_url: String,
        pg_schema: Option<String>,
        directory: tempfile::TempDir,
        options: Options,
    ) -> TestApp {
        let config = Config {
            database: DatabaseConfig {
                url: database_url.clone(),
                schema: pg_schema.clone(),
                max_connections: 10,
                acquire_timeout: options
                    .acquire_timeout
                    .unwrap_or(protodesk_credits::config::DATABASE_ACQUIRE_TIMEOUT_DEFAULT),
            },
            bind_addr: "127.0.0.1:0".parse().unwrap(),
            jwt: JwtConfig {
                key: options
                    .key
                    .unwrap_or_else(|| JwtKeySource::Secret(SecretString::from(TEST_SECRET.to_owned()))),
                issuer: options.issuer,
                audience: options.audience,
                max_lifetime: options
                    .max_token_lifetime
                    .unwrap_or(protodesk_credits::config::JWT_MAX_LIFETIME_DEFAULT),
            },
            http_idle_timeout: options
                .http_idle_timeout
                .unwrap_or(protodesk_credits::config::HTTP_IDLE_TIMEOUT_DEFAULT),
            cors_allowed_origins: options.cors_allowed_origins.clone(),
            stripe_webhook_secret: Some(STRIPE_SECRET.to_owned().into()),
            stripe_price_plans: STRIPE_PRICES
                .iter()
                .map(|(price, plan)| ((*price).to_owned(), (*plan).to_owned()))
                .collect(),
            subscription_grace: chrono::Duration::hours(
                protodesk_credits::config::DEFAULT_SUBSCRIPTION_GRACE_HOURS,
            ),
            rate_limits: options
                .rate_limits
                .unwrap_or(protodesk_credits::config::RateLimits {
                    per_subject: None,
                    per_workspace: None,
                }),
            webhooks: options
                .webhooks
                .unwrap_or(protodesk_credits::config::WebhookSettings {
                    deliver: false,
                    allow_private: true,
                    ..Default::default()
                }),
            renewal_cron: options.renewal_cron,
            group_commit: (!options.unbatched).then(|| options.group_commit.unwrap_or_default()),
            introspection: !options.no_introspection,
            trusted_documents: options.trusted_documents.clone().unwrap_or_default(),
            ws_keepalive: options
                .ws_keepalive
                .unwrap_or(protodesk_credits::http::WS_KEEPALIVE_DEFAULT),
            event_bus_capacity: options
                .event_bus_capacity
                .unwrap_or(protodesk_credits::events::EVENT_BUS_CAPACITY),
        };
        let clock = options.clock.unwrap_or_else(|| ManualClock::new(start_time()));
        let app = App::build(&config, Arc::new(clock.clone()))
            .await
            .unwrap_or_else(|error| panic!("the app failed to start on {backend:?}: {error:#}"));
        let address = format!("http://{}", app.local_addr().unwrap());
        let ledger = app.ledger();
        let db = app.database();
        let (sender, receiver) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = receiver.await;
        }));
        TestApp {
            backend,
            address,
            db,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            clock,
            ledger,
            _shutdown: Arc::new(ShutdownOnDrop(std::sync::Mutex::new(Some(sender)))),
            _directory: Arc::new(directory),
            pg_schema,
            database_url,
        }
    }

    /// Runs the real binary with `args` against this app's database (and
    /// the test secret), on a blocking thread.
    pub async fn run_binary(&self, args: &[&str]) -> std::process::Output {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_protodesk-credits"));
        command
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .env("JWT_SECRET", TEST_SECRET)
            .env_remove("DATABASE_SCHEMA")
            .env_remove("LOG_FORMAT");
        if let Some(schema) = &self.pg_schema {
            command.env("DATABASE_SCHEMA", schema);
        }
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// A token signed with the test secret.
    pub fn token(&self, role: &str, workspace: Option<&str>) -> String {
        mint(Claims {
            sub: format!("{role}-user"),
            workspace_id: workspace.map(str::to_owned),
            role: role.to_owned(),
            exp: Utc::now().timestamp() + 600,
            iss: None,
            aud: None,
        })
    }

    /// The app's (manual) current time.
    pub fn clock_now(&self) -> DateTime<Utc> {
        protodesk_credits::clock::Clock::now(&self.clock)
    }

    /// An operator token.
    pub fn operator(&self) -> String {
        self.token("operator", None)
    }

    /// Runs SQL against the app's database (catalogue edits in arrange steps).
    pub async fn execute_sql(&self, sql: &str) {
        self.db().execute_unprepared(sql).await.unwrap();
    }

    /// The server's pool.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The first column of the one row `sql` returns, as an integer.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        let db = self.db();
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no row from {sql}"));
        row.try_get_by_index(0).unwrap()
    }

    /// Checks the ledger invariant for every wallet: balance = sum of the
    /// ledger = sum of live grants = the newest row's balance after, never
    /// negative; sequences dense; one allocation grant per wallet and period.
    pub async fn verify_ledger(&self) {
        let audit = store::verify::audit(self.db()).await.unwrap();
        assert!(
            audit.violations.is_empty(),
            "ledger invariant broken: {:?}",
            audit.violations
        );
    }

    /// Drops the PostgreSQL schema.
    pub async fn teardown(&self) {
        if let Some(schema) = &self.pg_schema {
            drop_schema(schema).await;
        }
    }
}

/// (URL, schema) of a fresh PostgreSQL schema for a process of its own;
/// the name carries its creation time, so a later run sweeps it if a
/// failed test leaves it behind.
pub fn postgres_database(name: &str) -> (String, String) {
    (
        postgres_url(),
        format!("test_{}_{name}_{}", Utc::now().timestamp(), std::process::id()),
    )
}

/// Drops a PostgreSQL schema and everything in it.
pub async fn drop_schema(schema: &str) {
    let db = Database::connect(postgres_url()).await.unwrap();
    // A scenario's instances still run (a webhook worker finishing a turn):
    // dropping while one writes can deadlock; try again.
    for attempt in 1.. {
        match db
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
        {
            Ok(_) => break,
            Err(error) if attempt < 5 && error.to_string().contains("deadlock") => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(error) => panic!("dropping {schema}: {error}"),
        }
    }
    db.close().await.ok();
}

/// Debian's Chromium, or `CHROMIUM_PATH`.
pub fn chromium_path() -> String {
    std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// Whether what a test of `tests` needs is there: each need is whether it
/// is present and how to get it. Under CI a missing one fails the test;
/// elsewhere it is named and the caller passes without running.
pub fn tools_present(tests: &str, needs: Vec<(bool, String)>) -> bool {
    let missing: Vec<String> = needs
        .into_iter()
        .filter_map(|(present, what)| (!present).then_some(what))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{tests} cannot run under CI: missing {missing:?}"
    );
    eprintln!("{tests} not run: missing {missing:?}");
    false
}

/// Mints an HS256 token with the test secret.
pub fn mint(claims: Claims) -> String {
    mint_hs256(TEST_SECRET, &claims).unwrap()
}

/// Path of a test fixture.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs one scenario on one backend, then audits the ledger and cleans up.
pub async fn run_with<F, Fut>(backend: Backend, options: Options, scenario: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    let app = TestApp::spawn_with(backend, options).await;
    scenario(app.clone()).await;
    app.verify_ledger().await;
    app.teardown().await;
}

/// Turns scenario functions of the calling module into two tests each,
/// `sqlite::name` and `postgres::name`, so that no scenario is paired with
/// its backends by hand:
/// - `both_backends!(a, b)`: `async fn a(app: TestApp)`, on an app spawned
///   with the default options, audited and torn down after;
/// - `both_backends!(options = expr; a, b)`: the same, spawned with `expr`;
/// - `both_backends!(each_backend: a, b)`: `async fn a(backend: Backend)`,
///   for scenarios that spawn their own apps (several, or prepared).
#[macro_export]
macro_rules! both_backends {
    (each_backend: $($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )+
        }
    };
    (options = $options:expr; $($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::helpers::run_with($crate::helpers::Backend::Sqlite, $options, super::$name).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::helpers::run_with($crate::helpers::Backend::Postgres, $options, super::$name).await;
                }
            )+
        }
    };
    ($($name:ident),+ $(,)?) => {
        $crate::both_backends!(options = $crate::helpers::Options::default(); $($name),+);
    };
}
