//! Goal: a new user following the README gets a working service: the real
//! binary starts with the embedded SQLite default (no DATABASE_URL), serves
//! GraphiQL, mints tokens with its `token` command, and answers a real spend.
//! Method: run the compiled binary as the README does, in an empty
//! directory, and drive it over HTTP; the same on PostgreSQL.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::postgres_url;

const BINARY: &str = env!("CARGO_BIN_EXE_protodesk-credits");
const SECRET: &str = "dev-secret-change-me";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mint(directory: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(BINARY)
        .current_dir(directory)
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

async fn post(client: &reqwest::Client, base: &str, token: &str, query: &str) -> Value {
    client
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn walkthrough(database: Option<(String, String)>) {
    let directory = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(BINARY);
    command
        .current_dir(directory.path())
        .env_remove("DATABASE_URL")
        .env("JWT_SECRET", SECRET)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info,tower_http=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(directory.path().join("server.log")).unwrap());
    if let Some((url, schema)) = &database {
        command.env("DATABASE_URL", url).env("DATABASE_SCHEMA", schema);
    }
    let server = Server(command.spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await
            && response.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server did not become ready");

    let graphiql = client
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(graphiql.contains("graphiql"));
    let operator = mint(directory.path(), &["--role", "operator"]);
    let created = post(
        &client,
        &base,
        &operator,
        "mutation { createWorkspace(input: {workspaceId: \"acme\", name: \"Acme\"}) { wallet { balance { total } } } }",
    )
    .await;
    assert_eq!(
        created["data"]["createWorkspace"]["wallet"]["balance"]["total"], 300,
        "{created}"
    );
    let service = mint(directory.path(), &["--role", "service", "--workspace", "acme"]);
    let spent = post(
        &client,
        &base,
        &service,
        "mutation { spendCredit(input: {action: TRIAGE, idempotencyKey: \"ticket-1\"}) { outcome balance { total } } }",
    )
    .await;
    assert_eq!(
        spent["data"]["spendCredit"],
        json!({ "outcome": "CHARGED", "balance": { "total": 299 } })
    );
    if database.is_none() {
        assert!(
            directory.path().join("protodesk-credits.db").exists(),
            "the default SQLite file"
        );
    }
    drop(server);
    let log = std::fs::read_to_string(directory.path().join("server.log")).unwrap();
    assert_json_logs_without_secrets(&log, &[SECRET, &operator, &service]);
}

/// Every log line is one JSON object; requests are logged inside an
/// `http.request` span naming the path; no secret appears anywhere.
fn assert_json_logs_without_secrets(log: &str, secrets: &[&str]) {
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines.iter().any(|line| line["span"]["name"] == "http.request"
            && line["span"]["path"] == "/graphql"),
        "a request span: {log}"
    );
    assert!(lines.iter().any(|line| line["fields"]["message"]
        .as_str()
        .is_some_and(|message| message.starts_with("serving GraphQL"))));
    for secret in secrets {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[tokio::test]
async fn sqlite_the_readme_walkthrough_works_on_the_real_binary() {
    walkthrough(None).await;
}

#[tokio::test]
async fn postgres_the_readme_walkthrough_works_on_the_real_binary() {
    let schema = format!(
        "test_{}_walkthrough_{}",
        chrono::Utc::now().timestamp(),
        std::process::id()
    );
    walkthrough(Some((postgres_url(), schema.clone()))).await;
    let db = sea_orm::Database::connect(postgres_url()).await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&db, &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
}
