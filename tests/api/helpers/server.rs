//! The real server binary as a child process, for the tests that need a
//! process of its own: the README walkthrough, the browser test, crashes.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The binary under test: this build's, or `PROTODESK_BINARY` (`.ci/run`
/// points it at the release build for the hostile-input test, as stack
/// depth differs between debug and release builds).
pub fn binary() -> String {
    std::env::var("PROTODESK_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_protodesk-credits").to_owned())
}
/// The secret the README uses, and so do these servers.
pub const SECRET: &str = "dev-secret-change-me";

/// The real binary, serving in a directory of its own; killed on drop.
pub struct RealServer {
    child: Option<Child>,
    pub base: String,
    pub directory: tempfile::TempDir,
    client: reqwest::Client,
    database: Option<(String, String)>,
    /// Extra environment variables of the server.
    env: Vec<(String, String)>,
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl RealServer {
    /// Starts `serve` with JSON logs to `server.log`, on the SQLite default
    /// or on (url, schema); waits until `/readyz` answers 200.
    pub async fn start(database: Option<&(String, String)>) -> RealServer {
        Self::start_with_env(database, &[]).await
    }

    /// The same, with extra environment variables.
    pub async fn start_with_env(database: Option<&(String, String)>, env: &[(&str, &str)]) -> RealServer {
        let mut server = RealServer {
            env: env
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            child: None,
            base: String::new(),
            directory: tempfile::tempdir().unwrap(),
            client: reqwest::Client::new(),
            database: database.cloned(),
        };
        server.spawn().await;
        server
    }

    /// Starts the binary (again), on port 0, in the same directory and on
    /// the same database; `base` is read from the address it logs.
    pub async fn spawn(&mut self) {
        let log_path = self.directory.path().join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let logged_before = log.metadata().unwrap().len() as usize;
        let mut command = Command::new(binary());
        command
            .current_dir(self.directory.path())
            .env_remove("DATABASE_URL")
            .env("JWT_SECRET", SECRET)
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,tower_http=debug")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some((url, schema)) = &self.database {
            command.env("DATABASE_URL", url).env("DATABASE_SCHEMA", schema);
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        self.child = Some(command.spawn().unwrap());
        self.base = String::new();
        for _ in 0..100 {
            let text = std::fs::read(&log_path).unwrap_or_default();
            let text = String::from_utf8_lossy(&text[logged_before.min(text.len())..]).into_owned();
            if let Some(at) = text.find("serving GraphQL at http://") {
                let address: String = text[at + "serving GraphQL at ".len()..]
                    .chars()
                    .take_while(|c| !matches!(c, ' ' | '"'))
                    .collect();
                // "http://127.0.0.1:PORT/graphql…": keep scheme, host, port.
                let address = address.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                self.base = address;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!self.base.is_empty(), "the server logged no address");
        for _ in 0..100 {
            if let Ok(response) = self.client.get(format!("{}/readyz", self.base)).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not become ready");
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(std::process::Child::id)
            .expect("the server runs")
    }

    /// The process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_none())
    }

    /// `kill -9`: no shutdown, no drain.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `protodesk-credits token <args>`, as the README shows.
    /// Runs the binary's `verify` against this server's database (as the
    /// harness audits every in-process scenario): every invariant holds.
    pub fn verify(&self) {
        let mut command = Command::new(binary());
        command
            .current_dir(self.directory.path())
            .env_remove("DATABASE_URL")
            .env("JWT_SECRET", SECRET)
            .arg("verify");
        if let Some((url, schema)) = &self.database {
            command.env("DATABASE_URL", url).env("DATABASE_SCHEMA", schema);
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        let output = command.output().unwrap();
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && report.contains("every invariant holds"),
            "verify: {report}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn mint(&self, args: &[&str]) -> String {
        let output = Command::new(binary())
            .current_dir(self.directory.path())
            .env("JWT_SECRET", SECRET)
            .arg("token")
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    pub async fn post(&self, token: &str, query: &str) -> Value {
        self.client
            .post(format!("{}/graphql", self.base))
            .bearer_auth(token)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Creates workspace `acme` with an operator token; its balance.
    pub async fn create_acme(&self) -> Value {
        let operator = self.mint(&["--role", "operator"]);
        let created = self
            .post(
                &operator,
                "mutation { createWorkspace(input: {workspaceId: \"acme\", name: \"Acme\"}) { wallet { balance { total } } } }",
            )
            .await;
        created["data"]["createWorkspace"]["wallet"]["balance"]["total"].clone()
    }
}
