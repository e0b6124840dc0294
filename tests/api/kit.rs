//! Goal: the client kit (`clients/typescript`, `@protodesk/credits`) keeps
//! its word against this very binary: typed calls, idempotent retries,
//! errors with codes, `watchBalance` under restarts, cut sockets, expiring
//! tokens and 1,000 spends while disconnected, trusted documents enforced,
//! `useBalance` in Chromium, and a packed tarball that loads and type-checks.
//! Method: run the kit's own tests (Node's test runner) with
//! `PROTODESK_BINARY` naming this build; they start, kill and restart the
//! server themselves, behind a TCP proxy. On SQLite and on PostgreSQL.

use std::path::Path;
use std::process::Command;

use crate::helpers::server::binary;
use crate::helpers::{chromium_path, drop_schema, postgres_database, tools_present};

/// The kit's tests need its `npm ci` and `npm run build` (`.ci/run` does
/// both) and Chromium. Under CI a missing piece fails; elsewhere it is
/// named and the test passes without running.
fn kit_ready(kit: &Path) -> bool {
    let chromium = chromium_path();
    tools_present(
        "the client kit's tests",
        vec![
            (
                kit.join("node_modules/playwright-core").exists(),
                "clients/typescript/node_modules (npm ci)".to_owned(),
            ),
            (
                kit.join("dist/index.js").exists(),
                "clients/typescript/dist (npm run build)".to_owned(),
            ),
            (
                Path::new(&chromium).exists(),
                format!("{chromium} (apt-get install chromium)"),
            ),
        ],
    )
}

/// The longest a run of the kit's tests may take (about a minute alone).
const KIT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

async fn kit_tests(database: Option<(String, String)>) {
    let kit = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/typescript");
    if !kit_ready(&kit) {
        return;
    }
    let (success, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let logs = tempfile::tempdir().unwrap();
        let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
        let mut command = Command::new("npm");
        command
            .current_dir(&kit)
            .args(["test", "--silent"])
            .env("PROTODESK_BINARY", binary())
            .env_remove("DATABASE_URL")
            .env_remove("DATABASE_SCHEMA")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        if let Some((url, schema)) = &database {
            command.env("DATABASE_URL", url).env("DATABASE_SCHEMA", schema);
        }
        let mut child = command.spawn().unwrap();
        // A kit test that never ends must not hold the suite: at most
        // KIT_DEADLINE, then the run fails with what it printed.
        let deadline = std::time::Instant::now() + KIT_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        (status.map(|status| status.success()), read(&out), read(&err))
    })
    .await
    .unwrap();
    assert!(
        success == Some(true),
        "the client kit's tests {}\nstdout: {stdout}\nstderr: {stderr}",
        if success.is_none() {
            "did not end in time"
        } else {
            "failed"
        }
    );
    // Each file ran, none was skipped (a skip would hide Chromium missing).
    assert!(stdout.contains("# fail 0"), "{stdout}");
    assert!(stdout.contains("# skipped 0"), "{stdout}");
    let passed: usize = stdout
        .lines()
        .find_map(|line| line.strip_prefix("# pass "))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0);
    assert!(passed >= 15, "only {passed} kit tests passed:\n{stdout}");
}

#[tokio::test]
async fn sqlite_the_client_kit_keeps_its_word() {
    kit_tests(None).await;
}

#[tokio::test]
async fn postgres_the_client_kit_keeps_its_word() {
    let database = postgres_database("kit");
    kit_tests(Some(database.clone())).await;
    drop_schema(&database.1).await;
}
