//! Goal: the catalogue of the contract is served publicly, from data.
//! Method: query it without a token; edit a row and see the answer change.

use serde_json::json;

use crate::both_backends;
use crate::helpers::TestApp;

async fn the_catalogue_is_public_and_matches_the_contract(app: TestApp) {
    let answer = app
        .gql(
            None,
            "{ plans { code priceCents currency monthlyCredits isTrial trialDays }
               topUpPacks { code priceCents currency credits }
               actionCosts { action credits } }",
            json!({}),
        )
        .await;
    let data = answer.data();
    let plans: Vec<_> = data["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|plan| {
            (
                plan["code"].clone(),
                plan["priceCents"].clone(),
                plan["monthlyCredits"].clone(),
            )
        })
        .collect();
    assert_eq!(
        plans,
        vec![
            (json!("PRO_TRIAL"), json!(0), json!(300)),
            (json!("STARTER"), json!(1499), json!(250)),
            (json!("PRO"), json!(2999), json!(1000)),
            (json!("BUSINESS"), json!(5999), json!(2500)),
            (json!("ENTERPRISE"), json!(null), json!(null)),
        ]
    );
    assert_eq!(data["plans"][0]["trialDays"], json!(7));
    assert_eq!(
        data["topUpPacks"],
        json!([
            { "code": "PACK_100", "priceCents": 500, "currency": "USD", "credits": 100 },
            { "code": "PACK_500", "priceCents": 2000, "currency": "USD", "credits": 500 },
            { "code": "PACK_2500", "priceCents": 8000, "currency": "USD", "credits": 2500 },
        ])
    );
    let mut costs: Vec<_> = data["actionCosts"].as_array().unwrap().clone();
    costs.sort_by_key(|cost| cost["action"].as_str().unwrap().to_owned());
    assert_eq!(
        costs,
        vec![
            json!({ "action": "AUTO_RESOLVE", "credits": 1 }),
            json!({ "action": "SIDEKICK", "credits": 1 }),
            json!({ "action": "TRIAGE", "credits": 1 }),
        ]
    );
}

async fn catalogue_values_are_data_not_code(app: TestApp) {
    app.execute_sql("UPDATE action_cost SET credits = 3 WHERE action = 'AUTO_RESOLVE'")
        .await;
    app.create_workspace("ws-data").await;
    let service = app.token("service", Some("ws-data"));

    let spent = app.spend_ok(&service, "AUTO_RESOLVE", "k1").await;

    assert_eq!(spent["outcome"], "CHARGED");
    assert_eq!(spent["cost"], 3);
    assert_eq!(spent["transaction"]["amount"], -3);
    assert_eq!(spent["balance"]["total"], 297);
}

async fn health_and_readiness_answer(app: TestApp) {
    let health = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    let graphiql = app.http.get(format!("{}/", app.address)).send().await.unwrap();

    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200);
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql.text().await.unwrap().contains("graphiql"));
}

async fn queries_work_over_get_and_mutations_are_refused_there(app: TestApp) {
    app.create_workspace("ws-get").await;
    let token = app.token("agent", Some("ws-get"));

    let query = app
        .http
        .get(format!("{}/graphql", app.address))
        .query(&[("query", "{ wallet { balance { total } } }")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mutation = app
        .http
        .get(format!("{}/graphql", app.address))
        .query(&[(
            "query",
            "mutation { spendCredit(input: {action: SIDEKICK, idempotencyKey: \"g\"}) { outcome } }",
        )])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(query.status(), 200);
    let body: serde_json::Value = query.json().await.unwrap();
    assert_eq!(body["data"]["wallet"]["balance"]["total"], 300);
    assert_eq!(mutation.status(), 405);
    let body: serde_json::Value = mutation.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(app.balance_total("ws-get").await, 300);
}

both_backends!(
    the_catalogue_is_public_and_matches_the_contract,
    catalogue_values_are_data_not_code,
    health_and_readiness_answer,
    queries_work_over_get_and_mutations_are_refused_there,
);
