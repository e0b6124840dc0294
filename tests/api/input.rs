//! Goal: bad input gets a clear BAD_USER_INPUT and changes nothing.
//! Method: send each kind of bad value, check the code, then check that
//! the wallet's ledger did not move.

use serde_json::json;

use crate::both_backends;
use crate::helpers::TestApp;

async fn bad_input_is_refused_and_writes_nothing(app: TestApp) {
    app.create_workspace("ws-input").await;
    let service = app.token("service", Some("ws-input"));
    let admin = app.token("admin", Some("ws-input"));
    let operator = app.operator();
    let spend = "mutation($k: String!, $a: Action!, $r: String) { spendCredit(input: {action: $a, idempotencyKey: $k, reference: $r}) { outcome } }";
    let page = "query($first: Int, $after: String) { wallet { transactions(first: $first, after: $after) { edges { cursor } } } }";
    let plan = "mutation($c: Int) { changePlan(input: {workspaceId: \"ws-input\", plan: ENTERPRISE, enterpriseMonthlyCredits: $c}) { wallet { plan } } }";
    let cases: Vec<(&str, &str, &str, serde_json::Value)> = vec![
        ("empty key", &service, spend, json!({ "k": "", "a": "TRIAGE" })),
        (
            "whitespace key",
            &service,
            spend,
            json!({ "k": "   ", "a": "TRIAGE" }),
        ),
        (
            "oversize key",
            &service,
            spend,
            json!({ "k": "k".repeat(201), "a": "TRIAGE" }),
        ),
        (
            "oversize reference",
            &service,
            spend,
            json!({ "k": "ok", "a": "TRIAGE", "r": "r".repeat(201) }),
        ),
        (
            "unknown action",
            &service,
            spend,
            json!({ "k": "ok", "a": "TELEPORT" }),
        ),
        (
            "action of the wrong type",
            &service,
            spend,
            json!({ "k": "ok", "a": 7 }),
        ),
        ("zero page", &service, page, json!({ "first": 0 })),
        ("negative page", &service, page, json!({ "first": -5 })),
        ("page above the limit", &service, page, json!({ "first": 101 })),
        (
            "page overflowing Int",
            &service,
            page,
            json!({ "first": 2147483648i64 }),
        ),
        (
            "malformed cursor",
            &service,
            page,
            json!({ "first": 5, "after": "garbage!" }),
        ),
        (
            "forged cursor",
            &service,
            page,
            json!({ "first": 5, "after": "c2VxOi0x" }),
        ),
        ("zero enterprise credits", &operator, plan, json!({ "c": 0 })),
        ("negative enterprise credits", &operator, plan, json!({ "c": -1 })),
        (
            "overflowing enterprise credits",
            &operator,
            plan,
            json!({ "c": 4294967296i64 }),
        ),
        ("missing enterprise credits", &operator, plan, json!({})),
    ];
    for (name, token, query, variables) in cases {
        let answer = app.gql(Some(token), query, variables).await;
        assert_eq!(answer.code(), "BAD_USER_INPUT", "{name}: {}", answer.body);
        assert!(answer.status < 500, "{name} answered {}", answer.status);
    }
    let unknown_pack = app
        .top_up(&app.operator(), Some("ws-input"), "PACK_1000000", "pay")
        .await;
    assert_eq!(unknown_pack.code(), "BAD_USER_INPUT");
    let empty_reference = app
        .top_up(&app.operator(), Some("ws-input"), "PACK_100", "")
        .await;
    assert_eq!(empty_reference.code(), "BAD_USER_INPUT");
    let trial = app.set_plan(&admin, "PRO_TRIAL", None).await;
    assert_eq!(trial.code(), "BAD_USER_INPUT");
    let credits_on_a_listed_plan = app
        .change_plan(&operator, Some("ws-input"), "PRO", Some(10))
        .await;
    assert_eq!(credits_on_a_listed_plan.code(), "BAD_USER_INPUT");
    for bad_id in ["", "has space", "x".repeat(65).as_str(), "semi;colon"] {
        let answer = app
            .gql(
                Some(&operator),
                "mutation($id: ID!) { createWorkspace(input: {workspaceId: $id, name: \"n\"}) { wallet { workspaceId } } }",
                json!({ "id": bad_id }),
            )
            .await;
        assert_eq!(answer.code(), "BAD_USER_INPUT", "workspace id {bad_id:?}");
    }
    let blank_name = app
        .gql(
            Some(&operator),
            "mutation { createWorkspace(input: {workspaceId: \"ws-blank\", name: \"  \"}) { wallet { workspaceId } } }",
            json!({}),
        )
        .await;
    assert_eq!(blank_name.code(), "BAD_USER_INPUT");

    let wallet = app.wallet(&service, None).await;
    assert_eq!(wallet.data()["wallet"]["lastSequence"], 1, "nothing was written");
    assert_eq!(wallet.data()["wallet"]["plan"], "PRO_TRIAL");
    assert_eq!(wallet.data()["wallet"]["balance"]["total"], 300);
    assert_eq!(app.wallet(&operator, Some("ws-blank")).await.code(), "NOT_FOUND");
}

async fn garbage_requests_get_a_4xx_and_the_server_keeps_answering(app: TestApp) {
    let url = format!("{}/graphql", app.address);
    let not_json = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    let not_graphql = app.gql(None, "query {{{", json!({})).await;
    // Its own client: the server refuses the body without reading it and
    // closes that connection, which a shared pool could otherwise reuse.
    let oversize = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(format!("{{\"query\": \"{}\"}}", "a".repeat(300 * 1024)))
        .send()
        .await
        .unwrap();

    assert!(
        (400..500).contains(&not_json.status().as_u16()),
        "{}",
        not_json.status()
    );
    assert_eq!(not_graphql.code(), "BAD_USER_INPUT");
    assert!(
        (400..500).contains(&oversize.status().as_u16()),
        "{}",
        oversize.status()
    );
    let still_up = app.gql(None, "{ actionCosts { action } }", json!({})).await;
    assert_eq!(still_up.data()["actionCosts"].as_array().unwrap().len(), 3);
}

both_backends!(
    bad_input_is_refused_and_writes_nothing,
    garbage_requests_get_a_4xx_and_the_server_keeps_answering,
);
