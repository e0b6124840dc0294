//! Driving the service: tokens, the keep-alive connections that post
//! prepared spends, a closed or open loop, and the rows it wrote.

use super::*;

pub(super) fn token(workspace: u64) -> String {
    mint_hs256(
        SECRET,
        &Claims {
            sub: "bench".to_owned(),
            workspace_id: Some(format!("w-{workspace}")),
            role: "service".to_owned(),
            exp: Utc::now().timestamp() + 3600,
            iss: None,
            aud: None,
        },
    )
    .expect("token")
}

pub(super) const SPEND: &str =
    "mutation($k: String!) { spendCredit(input: {action: TRIAGE, idempotencyKey: $k}) { outcome } }";

/// The same spend for an agent (`BUDGETS=on`).
pub(super) const SPEND_FOR_AGENT: &str = "mutation($k: String!, $a: ID) { spendCredit(input: {action: TRIAGE, idempotencyKey: $k, agentId: $a}) { outcome } }";

/// Agents the spends are spread over with `BUDGETS=on`.
pub(super) const AGENTS: u64 = 1_000;

/// Whether `BUDGETS=on`.
pub(super) fn with_budgets() -> bool {
    env_or("BUDGETS", String::new()) == "on"
}

/// `BUDGETS=on`: a HARD daily EACH_AGENT budget on every wallet, with a
/// limit no run reaches (written as `setBudget` would).
pub(super) async fn add_budgets(db: &DatabaseConnection, n: u64) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().expect("date");
    let placeholder = if backend == DbBackend::Postgres { "$1" } else { "?" };
    let sql = format!(
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
         INSERT INTO budget (wallet_id, name, applies_to, budget_window, limit_credits, mode, counting_since, \
         created_at, updated_at) SELECT n, 'per-agent', 'EACH_AGENT', 'DAY', 1000000000, 'HARD', {p}, {p}, {p} FROM s",
        p = placeholder
    );
    let values: Vec<Value> = if backend == DbBackend::Postgres {
        vec![at.into()]
    } else {
        vec![at.into(); 3]
    };
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(())
}

/// What drives the server: where, as whom, how hard; and the CHARGED count.
#[derive(Clone)]
pub(super) struct Load {
    pub(super) address: std::net::SocketAddr,
    pub(super) tokens: Arc<Vec<String>>,
    pub(super) shape: &'static str,
    pub(super) clients: u64,
    pub(super) seconds: u64,
    pub(super) charged: Arc<AtomicU64>,
}

/// One keep-alive HTTP/1.1 connection that posts prepared requests, as a
/// load generator such as wrk does: the request is written as bytes and
/// only the status, `Content-Length` and body of the answer are read, so
/// the generator's own CPU time, which shares the machine with the server
/// and the database, stays small.
pub(super) struct Connection {
    pub(super) stream: tokio::net::TcpStream,
    pub(super) buffer: Vec<u8>,
}

impl Connection {
    pub(super) async fn open(address: std::net::SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Posts `body` to `/graphql` with a bearer token; the answer's body.
    pub(super) async fn post(&mut self, token: &str, body: &str) -> anyhow::Result<&[u8]> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!(
            "POST /graphql HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await?;
        self.buffer.clear();
        let (head, length) = loop {
            if let Some(end) = self.buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..end])?;
                anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "answered {head}");
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .ok_or_else(|| anyhow::anyhow!("no content-length in {head}"))?;
                break (end + 4, length);
            }
            anyhow::ensure!(
                self.stream.read_buf(&mut self.buffer).await? > 0,
                "connection closed"
            );
        };
        while self.buffer.len() < head + length {
            anyhow::ensure!(
                self.stream.read_buf(&mut self.buffer).await? > 0,
                "connection closed"
            );
        }
        Ok(&self.buffer[head..head + length])
    }
}

/// The part of a spend's answer the benchmark checks.
#[derive(serde::Deserialize)]
pub(super) struct Answer<'a> {
    #[serde(borrow)]
    pub(super) data: Option<AnswerData<'a>>,
}

#[derive(serde::Deserialize)]
pub(super) struct AnswerData<'a> {
    #[serde(rename = "spendCredit", borrow)]
    pub(super) spend_credit: SpendAnswer<'a>,
}

#[derive(serde::Deserialize)]
pub(super) struct SpendAnswer<'a> {
    pub(super) outcome: &'a str,
}

/// A hold of one credit for TRIAGE, then its capture (the `pairs` phase).
pub(super) const RESERVE: &str = "mutation($k: String!) { reserveCredits(input: {action: TRIAGE, credits: 1, holdKey: $k}) { outcome hold { id } } }";
pub(super) const CAPTURE: &str = "mutation($h: ID!) { captureHold(input: {holdId: $h}) { hold { state } } }";

/// One reserve and its capture on `connection`: ok when the hold was HELD
/// and then CAPTURED.
async fn hold_then_capture(connection: &mut Connection, token: &str, key: &str) -> anyhow::Result<()> {
    let body = format!(
        r#"{{"query":{},"variables":{{"k":"{key}"}}}}"#,
        serde_json::to_string(RESERVE)?
    );
    let answer: serde_json::Value = serde_json::from_slice(connection.post(token, &body).await?)?;
    let hold = &answer["data"]["reserveCredits"];
    anyhow::ensure!(hold["outcome"] == "HELD", "reserve answered {answer}");
    let id = hold["hold"]["id"].as_str().unwrap_or_default().to_owned();
    let body = format!(
        r#"{{"query":{},"variables":{{"h":"{id}"}}}}"#,
        serde_json::to_string(CAPTURE)?
    );
    let answer: serde_json::Value = serde_json::from_slice(connection.post(token, &body).await?)?;
    anyhow::ensure!(
        answer["data"]["captureHold"]["hold"]["state"] == "CAPTURED",
        "capture answered {answer}"
    );
    Ok(())
}

/// Spends over HTTP: closed loop (`rate` None) or open loop at `rate`/s.
/// The phase `pairs` sends a reserve and its capture instead of each spend
/// (a latency is the pair's).
pub(super) async fn service(load: &Load, rate: Option<f64>, phase: &'static str) -> anyhow::Result<Phase> {
    let Load {
        address,
        tokens,
        shape,
        clients,
        seconds,
        charged,
    } = load;
    let (address, shape, clients, seconds) = (*address, *shape, *clients, *seconds);
    let started = Instant::now();
    let counted_from = started + rate.map_or(Duration::ZERO, |_| OPEN_LOOP_WARM_UP);
    let deadline = counted_from + Duration::from_secs(seconds);
    let tasks = (0..clients).map(|client| {
        let tokens = tokens.clone();
        let charged = charged.clone();
        tokio::spawn(async move {
            // One connection per client.
            let mut connection = Connection::open(address).await?;
            let interval = rate.map(|rate| Duration::from_secs_f64(clients as f64 / rate));
            let budgets = with_budgets();
            let query = serde_json::to_string(if budgets { SPEND_FOR_AGENT } else { SPEND })?;
            let mut latencies = Vec::new();
            let mut answered = started;
            let mut i = 0u64;
            loop {
                let scheduled = match interval {
                    // Spread the clients' first sends over one interval.
                    Some(interval) => started + interval.mul_f64(i as f64 + client as f64 / clients as f64),
                    None => Instant::now(),
                };
                if scheduled >= deadline {
                    break;
                }
                if interval.is_some() {
                    // Not in a closed loop: sleeping until now would still
                    // wait for the timer's next tick (up to 1 ms).
                    tokio::time::sleep_until(scheduled.into()).await;
                }
                let sent = Instant::now();
                let wallet = wallet_for(shape, client, i);
                let token = &tokens[(wallet - 1) as usize];
                if phase == "pairs" {
                    hold_then_capture(&mut connection, token, &format!("{phase}-{client}-{i}")).await?;
                    answered = Instant::now();
                    if scheduled >= counted_from {
                        let latency = answered.duration_since(sent).as_secs_f64() * 1000.0;
                        latencies.push((latency, latency));
                    }
                    charged.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    continue;
                }
                let body = if budgets {
                    let agent = (client * 7919 + i * 31) % AGENTS;
                    format!(r#"{{"query":{query},"variables":{{"k":"{phase}-{client}-{i}","a":"agent-{agent}"}}}}"#)
                } else {
                    format!(r#"{{"query":{query},"variables":{{"k":"{phase}-{client}-{i}"}}}}"#)
                };
                let answer = connection.post(token, &body).await?;
                // A spend held back by this client's previous answer counts
                // from its scheduled time (no coordinated omission); one
                // sent late only by the driver's timer (Tokio's ticks are
                // 1 ms) counts from when it was sent.
                let from = if answered > scheduled { scheduled } else { sent };
                answered = Instant::now();
                if scheduled >= counted_from {
                    latencies.push((
                        answered.duration_since(from).as_secs_f64() * 1000.0,
                        answered.duration_since(scheduled).as_secs_f64() * 1000.0,
                    ));
                }
                let outcome = serde_json::from_slice::<Answer<'_>>(answer)
                    .ok()
                    .and_then(|answer| answer.data)
                    .map(|data| data.spend_credit.outcome);
                anyhow::ensure!(
                    outcome == Some("CHARGED"),
                    "spend answered {}",
                    String::from_utf8_lossy(answer)
                );
                charged.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            anyhow::Ok(latencies)
        })
    });
    Phase::gather(tasks, counted_from).await
}

pub(super) async fn spend_rows(db: &DatabaseConnection) -> anyhow::Result<u64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM ledger_entry WHERE kind = 'SPEND'",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no count"))?;
    Ok(row.try_get::<i64>("", "n")? as u64)
}
