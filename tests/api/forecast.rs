//! `Wallet.forecast`: the trailing week's burn, net of reversals, over the
//! wallet's life when younger; when the balance runs out at that pace; and
//! whether it lasts until the next reset.

use chrono::Duration;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, start_time};

async fn forecast(app: &TestApp, workspace: &str) -> Value {
    app.gql(
        Some(&app.operator()),
        "query($ws: ID) { wallet(workspaceId: $ws) { balance { total } forecast { dailyBurn depletesAt coversUntilReset } } }",
        json!({ "ws": workspace }),
    )
    .await
    .data()["wallet"]
        .clone()
}

fn instant(value: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    value.as_str().map(|text| text.parse().unwrap())
}

async fn spend(app: &TestApp, workspace: &str, keys: std::ops::Range<u32>) -> Vec<String> {
    let service = app.token("service", Some(workspace));
    let mut ids = Vec::new();
    for key in keys {
        let answer = app.spend_ok(&service, "TRIAGE", &format!("k-{key}")).await;
        assert_eq!(answer["outcome"], "CHARGED", "{answer}");
        ids.push(answer["transaction"]["id"].as_str().unwrap().to_owned());
    }
    ids
}

async fn a_trial_burns_over_its_life_net_of_reversals_and_forgets_old_spends(app: TestApp) {
    app.create_workspace("ws-run").await;
    let idle = forecast(&app, "ws-run").await;
    assert_eq!(
        idle["forecast"],
        json!({ "dailyBurn": 0.0, "depletesAt": null, "coversUntilReset": null })
    );

    let ids = spend(&app, "ws-run", 0..10).await;
    app.clock.set(start_time() + Duration::days(2));
    let young = forecast(&app, "ws-run").await;
    // Two days old, ten spent: five a day; 290 left last 58 days.
    assert_eq!(young["forecast"]["dailyBurn"], 5.0, "{young}");
    assert_eq!(
        instant(&young["forecast"]["depletesAt"]),
        Some(start_time() + Duration::days(60))
    );
    assert_eq!(
        young["forecast"]["coversUntilReset"],
        Value::Null,
        "a trial has no reset"
    );

    app.gql(
        Some(&app.operator()),
        "mutation($id: ID!) { reverseTransaction(input: {transactionId: $id, reason: \"mistake\"}) { balance { total } } }",
        json!({ "id": ids[0] }),
    )
    .await
    .data();
    let reversed = forecast(&app, "ws-run").await;
    assert_eq!(reversed["forecast"]["dailyBurn"], 4.5, "{reversed}");

    // Eight days on, those spends left the window.
    app.clock.set(start_time() + Duration::days(10));
    let later = forecast(&app, "ws-run").await;
    assert_eq!(later["forecast"]["dailyBurn"], 0.0, "{later}");
    assert_eq!(later["forecast"]["depletesAt"], Value::Null);
}

async fn a_paid_period_says_whether_the_balance_lasts_until_its_reset(app: TestApp) {
    app.set_trial_credits(0).await;
    app.create_workspace("ws-pro").await;
    let admin = app.token("admin", Some("ws-pro"));
    app.set_plan(&admin, "PRO", None).await.data();
    let end: chrono::DateTime<chrono::Utc> = app.wallet(&admin, None).await.data()["wallet"]["currentPeriod"]
        ["end"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // 700 spent in the week: 100 a day; 300 left last three days.
    spend(&app, "ws-pro", 0..700).await;
    app.clock.set(start_time() + Duration::days(7));
    let fast = forecast(&app, "ws-pro").await;
    assert_eq!(fast["balance"]["total"], 300);
    assert_eq!(fast["forecast"]["dailyBurn"], 100.0, "{fast}");
    let depletes = instant(&fast["forecast"]["depletesAt"]).unwrap();
    assert_eq!(depletes, start_time() + Duration::days(10));
    assert!(depletes < end);
    assert_eq!(fast["forecast"]["coversUntilReset"], false);

    // A week on with nothing spent, the pool outlasts the period.
    app.clock.set(start_time() + Duration::days(15));
    let calm = forecast(&app, "ws-pro").await;
    assert_eq!(calm["forecast"]["coversUntilReset"], true, "{calm}");
}

both_backends!(
    a_trial_burns_over_its_life_net_of_reversals_and_forgets_old_spends,
    a_paid_period_says_whether_the_balance_lasts_until_its_reset,
);
