//! Usage buckets and the CSV export.

use super::*;
use crate::both_backends;

async fn usage_buckets_match_a_hand_computed_table_across_a_month_boundary(app: TestApp) {
    app.create_workspace("ws-usage").await;
    let service = app.token("service", Some("ws-usage"));
    // The clock starts at Jan 31 10:00 UTC.
    let plan = [
        (12, "TRIAGE"),            // Jan 31 22:00
        (13, "TRIAGE"),            // Jan 31 23:00
        (14, "SIDEKICK"),          // Feb 1 00:00
        (15, "AUTO_RESOLVE"),      // Feb 1 01:00 (reversed below)
        (23, "TRIAGE"),            // Feb 1 09:00
        (24 * 2 + 14, "SIDEKICK"), // Feb 3 00:00 (next ISO week, still in the trial)
    ];
    let mut ids = Vec::new();
    for (index, (hours, action)) in plan.iter().enumerate() {
        app.clock.set(start_time() + Duration::hours(*hours));
        ids.push(app.spend_ok(&service, action, &format!("u{index}")).await["transaction"]["id"].clone());
    }
    reverse(&app, &ids[3]).await.data();
    let query = "query($from: DateTime!, $to: DateTime!, $bucket: UsageBucketSize!) { wallet {
        usage(from: $from, to: $to, bucket: $bucket) { start total byAction { action credits } } } }";
    let usage = |from: chrono::DateTime<Utc>, to: chrono::DateTime<Utc>, bucket: &str| {
        let app = app.clone();
        let service = service.clone();
        let bucket = bucket.to_owned();
        async move {
            app.gql(
                Some(&service),
                query,
                json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339(), "bucket": bucket }),
            )
            .await
            .data()["wallet"]["usage"]
                .clone()
        }
    };
    let day = |d: u32, m: u32| Utc.with_ymd_and_hms(2026, m, d, 0, 0, 0).unwrap();

    let days = usage(day(31, 1), day(2, 2), "DAY").await;
    let weeks = usage(day(26, 1), day(9, 2), "WEEK").await;
    let months = usage(day(1, 1), day(1, 3), "MONTH").await;

    let table = |buckets: &Value| -> Vec<(String, i64, Vec<i64>)> {
        buckets
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let per_action = b["byAction"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["credits"].as_i64().unwrap())
                    .collect();
                (
                    b["start"].as_str().unwrap()[..10].to_owned(),
                    b["total"].as_i64().unwrap(),
                    per_action,
                )
            })
            .collect()
    };
    // byAction order: TRIAGE, AUTO_RESOLVE, SIDEKICK.
    assert_eq!(
        table(&days),
        vec![
            ("2026-01-31".into(), 2, vec![2, 0, 0]),
            ("2026-02-01".into(), 2, vec![1, 0, 1])
        ]
    );
    assert_eq!(
        table(&weeks),
        vec![
            ("2026-01-26".into(), 4, vec![3, 0, 1]),
            ("2026-02-02".into(), 1, vec![0, 0, 1])
        ]
    );
    assert_eq!(
        table(&months),
        vec![
            ("2026-01-01".into(), 2, vec![2, 0, 0]),
            ("2026-02-01".into(), 3, vec![1, 0, 2])
        ]
    );
    let too_wide = app
        .gql(
            Some(&service),
            query,
            json!({ "from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "bucket": "DAY" }),
        )
        .await;
    assert_eq!(too_wide.code(), "BAD_USER_INPUT");
}

async fn a_period_exports_as_csv_authorized_like_the_query(app: TestApp) {
    app.create_workspace("ws-csv").await;
    app.create_workspace("ws-other").await;
    let service = app.token("service", Some("ws-csv"));
    app.spend(&service, "TRIAGE", "k,1", Some("ticket \"7\""))
        .await
        .data();
    app.clock.advance(Duration::hours(1));
    app.spend_ok(&service, "SIDEKICK", "k2").await;
    let url = format!("{}/export/transactions.csv", app.address);
    let range = [("from", "2026-01-01T00:00:00Z"), ("to", "2026-02-01T00:00:00Z")];

    let own = app
        .http
        .get(&url)
        .query(&range)
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();
    let other = app
        .http
        .get(&url)
        .query(&[range[0], range[1], ("workspaceId", "ws-other")])
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();
    let anonymous = app.http.get(&url).query(&range).send().await.unwrap();
    let operator = app
        .http
        .get(&url)
        .query(&[range[0], range[1], ("workspaceId", "ws-csv")])
        .bearer_auth(app.operator())
        .send()
        .await
        .unwrap();
    let bad_range = app
        .http
        .get(&url)
        .query(&[("from", "yesterday")])
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();

    assert_eq!(own.status(), 200);
    assert_eq!(own.headers()["content-type"], "text/csv; charset=utf-8");
    let body = own.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(&records[0][3], "GRANT");
    assert_eq!(&records[1][3], "SPEND");
    assert_eq!(&records[1][7], "ticket \"7\"");
    assert_eq!(&records[1][9], "k,1");
    assert_eq!(&records[2][6], "SIDEKICK");
    assert_eq!(other.status(), 404);
    assert_eq!(anonymous.status(), 401);
    assert_eq!(operator.status(), 200);
    assert_eq!(bad_range.status(), 400);
}

/// Formulas from a reference, a key and a token's subject reach the CSV
/// as text, never as live cells.
async fn exported_formulas_are_neutralised(app: TestApp) {
    app.create_workspace("ws-formula").await;
    let service = mint(Claims {
        sub: "=cmd|' /C calc'!A0".into(),
        workspace_id: Some("ws-formula".into()),
        role: "service".into(),
        exp: chrono::Utc::now().timestamp() + 600,
        iss: None,
        aud: None,
    });
    app.spend(
        &service,
        "TRIAGE",
        "+SUM(1,2)",
        Some("=HYPERLINK(\"http://evil\",\"x\")"),
    )
    .await
    .data();
    let body = app
        .http
        .get(format!("{}/export/transactions.csv", app.address))
        .query(&[("from", "2026-01-01T00:00:00Z"), ("to", "2026-02-01T00:00:00Z")])
        .bearer_auth(&service)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let spend = reader
        .deserialize::<std::collections::HashMap<String, String>>()
        .map(Result::unwrap)
        .find(|row| row["kind"] == "SPEND")
        .expect("the spend is exported");
    assert_eq!(spend["reference"], "'=HYPERLINK(\"http://evil\",\"x\")");
    assert_eq!(spend["idempotency_key"], "'+SUM(1,2)");
    assert_eq!(spend["actor"], "'=cmd|' /C calc'!A0");
    assert_eq!(spend["amount"], "-1", "numbers are left as numbers");
}

both_backends!(
    usage_buckets_match_a_hand_computed_table_across_a_month_boundary,
    a_period_exports_as_csv_authorized_like_the_query,
    exported_formulas_are_neutralised,
);
