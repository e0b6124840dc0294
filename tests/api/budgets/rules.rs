//! The budget rules, one test each: overrides, actions, soft warnings,
//! repeats, reversals, the agent-token rule, precedence with an empty
//! pool, the event once per window, configuration and its refusals.

use serde_json::json;

use super::*;
use crate::both_backends;
use protodesk_credits::events::EventKind;

/// EACH_AGENT gives every agent its own counter; an AGENT budget for the
/// same action and window replaces it for that agent (a lead's higher cap).
async fn an_agent_budget_overrides_each_agent(app: TestApp) {
    app.create_workspace("ws-lead").await;
    let admin = app.token("admin", Some("ws-lead"));
    let service = app.token("service", Some("ws-lead"));
    app.set_budget(&admin, None, &Budget::hard("each", "EACH_AGENT", 2))
        .await
        .data();
    let lead = Budget {
        agent: Some("lead"),
        ..Budget::hard("lead-cap", "AGENT", 4)
    };
    app.set_budget(&admin, None, &lead).await.data();

    let mut charged = std::collections::BTreeMap::new();
    for agent in ["bob", "lead", "eve"] {
        for n in 0..6 {
            let outcome = app
                .spend_for_ok(&service, "SIDEKICK", &format!("{agent}-{n}"), Some(agent))
                .await["outcome"]
                .clone();
            if outcome == "CHARGED" {
                *charged.entry(agent).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(
        charged,
        [("bob", 2), ("eve", 2), ("lead", 4)].into_iter().collect()
    );
    assert_eq!(
        app.budget_usage(&admin, Some("lead")).await,
        [("lead-cap".to_owned(), 4, 0)]
    );
    assert_eq!(
        app.budget_usage(&admin, Some("bob")).await,
        [("each".to_owned(), 2, 0)]
    );
    assert_eq!(app.budget_usage(&admin, None).await, [], "no workspace budget");
}

/// A budget on one action leaves the others alone; a spend that names no
/// agent is counted only by WORKSPACE budgets.
async fn budgets_count_their_action_and_their_agents_only(app: TestApp) {
    app.create_workspace("ws-action").await;
    let admin = app.token("admin", Some("ws-action"));
    let service = app.token("service", Some("ws-action"));
    let auto = Budget {
        action: Some("AUTO_RESOLVE"),
        ..Budget::hard("auto-resolve-daily", "WORKSPACE", 1)
    };
    app.set_budget(&admin, None, &auto).await.data();
    app.set_budget(&admin, None, &Budget::hard("per-agent", "EACH_AGENT", 0))
        .await
        .data();

    let outcome = |answer: Value| answer["outcome"].as_str().unwrap().to_owned();
    assert_eq!(
        outcome(app.spend_for_ok(&service, "AUTO_RESOLVE", "a1", None).await),
        "CHARGED"
    );
    let refused = app.spend_for_ok(&service, "AUTO_RESOLVE", "a2", None).await;
    assert_eq!(outcome(refused.clone()), "BUDGET_EXCEEDED");
    assert_eq!(refused["budget"]["budget"]["name"], "auto-resolve-daily");
    assert_eq!(
        (
            refused["budget"]["used"].as_i64(),
            refused["budget"]["remaining"].as_i64()
        ),
        (Some(1), Some(0))
    );
    assert!(refused["transaction"].is_null());
    for n in 0..3 {
        assert_eq!(
            outcome(app.spend_for_ok(&service, "TRIAGE", &format!("t{n}"), None).await),
            "CHARGED",
            "triage keeps running"
        );
    }
    let per_agent = app.spend_for_ok(&service, "TRIAGE", "t-ana", Some("ana")).await;
    assert_eq!(outcome(per_agent.clone()), "BUDGET_EXCEEDED");
    assert_eq!(per_agent["budget"]["agentId"], "ana");
    app.verify_ledger().await;
}

/// SOFT budgets never refuse: the spend is charged and the payload lists
/// each soft budget now over its limit.
async fn soft_budgets_charge_and_warn(app: TestApp) {
    app.create_workspace("ws-soft").await;
    let admin = app.token("admin", Some("ws-soft"));
    let service = app.token("service", Some("ws-soft"));
    let soft = Budget {
        mode: "SOFT",
        ..Budget::hard("soft-team", "WORKSPACE", 2)
    };
    app.set_budget(&admin, None, &soft).await.data();
    let answers = [
        app.spend_for_ok(&service, "TRIAGE", "s1", None).await,
        app.spend_for_ok(&service, "TRIAGE", "s2", None).await,
        app.spend_for_ok(&service, "TRIAGE", "s3", None).await,
    ];
    assert!(answers.iter().all(|answer| answer["outcome"] == "CHARGED"));
    assert_eq!(
        answers[1]["budgetWarnings"],
        json!([]),
        "at the limit is not over it"
    );
    assert_eq!(
        answers[2]["budgetWarnings"],
        json!([{ "budget": { "name": "soft-team" }, "agentId": null, "used": 3, "remaining": 0 }])
    );
}

/// A DUPLICATE counts nothing again; reversing a spend gives its credit
/// back to the window it was counted in.
async fn repeats_count_once_and_reversals_give_back(app: TestApp) {
    app.create_workspace("ws-repeat").await;
    let admin = app.token("admin", Some("ws-repeat"));
    let service = app.token("service", Some("ws-repeat"));
    app.set_budget(&admin, None, &Budget::hard("cap", "EACH_AGENT", 2))
        .await
        .data();
    let first = app.spend_for_ok(&service, "SIDEKICK", "r1", Some("ana")).await;
    let again = app.spend_for_ok(&service, "SIDEKICK", "r1", Some("ana")).await;
    assert_eq!(
        (first["outcome"].as_str(), again["outcome"].as_str()),
        (Some("CHARGED"), Some("DUPLICATE"))
    );
    assert_eq!(first["transaction"]["agentId"], "ana");
    assert_eq!(
        app.budget_usage(&admin, Some("ana")).await,
        [("cap".to_owned(), 1, 1)]
    );
    let other_agent = app.spend_for(&service, "SIDEKICK", "r1", Some("bob")).await;
    assert_eq!(
        other_agent.code(),
        "IDEMPOTENCY_CONFLICT",
        "the agent is part of the request"
    );

    app.spend_for_ok(&service, "SIDEKICK", "r2", Some("ana")).await;
    let full = app.spend_for_ok(&service, "SIDEKICK", "r3", Some("ana")).await;
    assert_eq!(full["outcome"], "BUDGET_EXCEEDED");
    let reversed = app
        .gql(
            Some(&app.operator()),
            "mutation($id: ID!) { reverseTransaction(input: {transactionId: $id, reason: \"wrong agent\"}) { transaction { kind agentId } } }",
            json!({ "id": first["transaction"]["id"] }),
        )
        .await;
    assert_eq!(
        reversed.data()["reverseTransaction"]["transaction"],
        json!({ "kind": "REVERSAL", "agentId": "ana" })
    );
    assert_eq!(
        app.budget_usage(&admin, Some("ana")).await,
        [("cap".to_owned(), 1, 1)]
    );
    let after = app.spend_for_ok(&service, "SIDEKICK", "r4", Some("ana")).await;
    assert_eq!(
        after["outcome"], "CHARGED",
        "the reversed credit is back in the window"
    );
    app.verify_ledger().await;
}

/// An agent token spends for its own `sub`: by default, or named; another
/// agent is FORBIDDEN and nothing is charged. Service tokens name any agent.
async fn agent_tokens_spend_for_themselves(app: TestApp) {
    app.create_workspace("ws-agent").await;
    let admin = app.token("admin", Some("ws-agent"));
    let agent = app.token("agent", Some("ws-agent"));
    app.set_budget(&admin, None, &Budget::hard("each", "EACH_AGENT", 1))
        .await
        .data();

    let own = app.spend_for_ok(&agent, "SIDEKICK", "g1", None).await;
    assert_eq!(own["transaction"]["agentId"], "agent-user");
    let named = app
        .spend_for_ok(&agent, "SIDEKICK", "g2", Some("agent-user"))
        .await;
    assert_eq!(named["outcome"], "BUDGET_EXCEEDED", "the same counter");
    let other = app
        .spend_for(&agent, "SIDEKICK", "g3", Some("someone-else"))
        .await;
    assert_eq!(other.code(), "FORBIDDEN");
    let service = app.token("service", Some("ws-agent"));
    let for_bob = app.spend_for_ok(&service, "SIDEKICK", "g4", Some("bob")).await;
    assert_eq!(for_bob["outcome"], "CHARGED");
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'SPEND'")
            .await,
        2
    );
}

/// With the pool empty and a budget exhausted, BUDGET_EXCEEDED wins (a
/// top-up would not help).
async fn budget_exceeded_wins_over_an_empty_pool(app: TestApp) {
    app.set_trial_credits(1).await;
    app.create_workspace("ws-empty").await;
    let admin = app.token("admin", Some("ws-empty"));
    let service = app.token("service", Some("ws-empty"));
    app.set_budget(&admin, None, &Budget::hard("one", "WORKSPACE", 1))
        .await
        .data();
    assert_eq!(
        app.spend_for_ok(&service, "TRIAGE", "e1", None).await["outcome"],
        "CHARGED"
    );
    let both = app.spend_for_ok(&service, "TRIAGE", "e2", None).await;
    assert_eq!(both["outcome"], "BUDGET_EXCEEDED");
    assert_eq!(both["balance"]["total"], 0);
    app.gql(
        Some(&admin),
        "mutation { removeBudget(input: {name: \"one\"}) { name } }",
        json!({}),
    )
    .await
    .data();
    assert_eq!(
        app.spend_for_ok(&service, "TRIAGE", "e3", None).await["outcome"],
        "INSUFFICIENT_CREDITS"
    );
}

/// The balance stream carries BUDGET_EXCEEDED the first time a window is
/// exhausted, once, naming the budget and the agent.
async fn the_stream_tells_once_per_window(app: TestApp) {
    app.create_workspace("ws-stream").await;
    let admin = app.token("admin", Some("ws-stream"));
    let service = app.token("service", Some("ws-stream"));
    app.set_budget(&admin, None, &Budget::hard("each", "EACH_AGENT", 2))
        .await
        .data();
    let mut events = app.ledger.events().subscribe("ws-stream");
    let mut client = app.ws(&admin).await;
    client
        .send(json!({ "id": "b", "type": "subscribe", "payload": { "query":
            "subscription { balanceChanged { kind sequence budgetName agentId } }" } }))
        .await;
    assert_eq!(client.next_event().await["kind"], "SNAPSHOT");
    for n in 0..5 {
        app.spend_for_ok(&service, "SIDEKICK", &format!("w{n}"), Some("ana"))
            .await;
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(client.next_event().await);
    }
    assert_eq!(
        seen,
        [
            json!({ "kind": "SPEND", "sequence": 2, "budgetName": null, "agentId": null }),
            json!({ "kind": "SPEND", "sequence": 3, "budgetName": null, "agentId": null }),
            json!({ "kind": "BUDGET_EXCEEDED", "sequence": 3, "budgetName": "each", "agentId": "ana" }),
        ]
    );
    let exceeded = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|event| event.kind == EventKind::BudgetExceeded)
        .count();
    assert_eq!(exceeded, 1, "three refusals after it, one event");
}

/// Admins and operators configure budgets; bad input is BAD_USER_INPUT and
/// changes nothing; an update of the limit keeps the counters, a change
/// of scope starts them afresh; at most 100 a workspace.
async fn budgets_are_configured_by_admins_with_checked_input(app: TestApp) {
    app.create_workspace("ws-conf").await;
    app.create_workspace("ws-other").await;
    let admin = app.token("admin", Some("ws-conf"));
    let service = app.token("service", Some("ws-conf"));
    let daily = Budget::hard("daily", "WORKSPACE", 3);

    for role in ["agent", "service"] {
        let refused = app
            .set_budget(&app.token(role, Some("ws-conf")), None, &daily)
            .await;
        assert_eq!(refused.code(), "FORBIDDEN", "{role}");
    }
    let elsewhere = app.set_budget(&admin, Some("ws-other"), &daily).await;
    assert_eq!(elsewhere.code(), "NOT_FOUND");
    let long_name = "n".repeat(65);
    let bad = [
        Budget::hard("daily", "AGENT", 3),
        Budget {
            agent: Some("ana"),
            ..Budget::hard("daily", "EACH_AGENT", 3)
        },
        Budget::hard("daily", "WORKSPACE", -1),
        Budget::hard("", "WORKSPACE", 1),
        Budget::hard(&long_name, "WORKSPACE", 1),
    ];
    for budget in &bad {
        assert_eq!(
            app.set_budget(&admin, None, budget).await.code(),
            "BAD_USER_INPUT"
        );
    }
    let list = "{ wallet { budgets { name limit mode } } }";
    assert_eq!(
        app.gql(Some(&admin), list, json!({})).await.data()["wallet"]["budgets"],
        json!([])
    );

    let set = app.set_budget(&app.operator(), Some("ws-conf"), &daily).await;
    assert_eq!(
        set.data()["setBudget"]["budget"],
        json!({ "name": "daily", "appliesTo": "WORKSPACE", "agentId": null, "action": null,
                "window": "DAY", "limit": 3, "mode": "HARD" })
    );
    app.spend_for_ok(&service, "TRIAGE", "c1", None).await;
    app.set_budget(&admin, None, &Budget::hard("daily", "WORKSPACE", 5))
        .await
        .data();
    assert_eq!(
        app.budget_usage(&admin, None).await,
        [("daily".to_owned(), 1, 4)],
        "a new limit keeps the count"
    );
    let narrower = Budget {
        action: Some("TRIAGE"),
        ..Budget::hard("daily", "WORKSPACE", 5)
    };
    app.set_budget(&admin, None, &narrower).await.data();
    assert_eq!(
        app.budget_usage(&admin, None).await,
        [("daily".to_owned(), 0, 5)],
        "a new scope counts afresh"
    );

    for n in 1..100 {
        app.set_budget(&admin, None, &Budget::hard(&format!("b{n:03}"), "WORKSPACE", 9))
            .await
            .data();
    }
    let over = app
        .set_budget(&admin, None, &Budget::hard("one-too-many", "WORKSPACE", 9))
        .await;
    assert_eq!(over.code(), "BAD_USER_INPUT");
    app.set_budget(&admin, None, &Budget::hard("b001", "WORKSPACE", 1))
        .await
        .data();

    let remove = "mutation($name: String!) { removeBudget(input: {name: $name}) { name } }";
    assert_eq!(
        app.gql(Some(&admin), remove, json!({ "name": "nope" }))
            .await
            .code(),
        "NOT_FOUND"
    );
    assert_eq!(
        app.gql(Some(&service), remove, json!({ "name": "daily" }))
            .await
            .code(),
        "FORBIDDEN"
    );
    app.gql(Some(&admin), remove, json!({ "name": "daily" }))
        .await
        .data();
    let budgets = app.gql(Some(&admin), list, json!({})).await;
    assert_eq!(budgets.data()["wallet"]["budgets"].as_array().unwrap().len(), 99);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM budget_counter").await,
        0,
        "removed with its budget"
    );
}

/// `usageByAgent` groups net spends by agent, agents first.
async fn usage_is_grouped_by_agent(app: TestApp) {
    app.create_workspace("ws-usage").await;
    let admin = app.token("admin", Some("ws-usage"));
    let service = app.token("service", Some("ws-usage"));
    app.spend_for_ok(&service, "SIDEKICK", "u1", Some("bob")).await;
    app.spend_for_ok(&service, "TRIAGE", "u2", None).await;
    app.spend_for_ok(&service, "SIDEKICK", "u3", Some("ana")).await;
    app.spend_for_ok(&service, "AUTO_RESOLVE", "u4", Some("ana"))
        .await;
    let now = app.clock_now();
    let answer = app
        .gql(
            Some(&admin),
            "query($from: DateTime!, $to: DateTime!) { wallet { usageByAgent(from: $from, to: $to) { agentId total byAction { action credits } } } }",
            json!({ "from": now - chrono::Duration::days(1), "to": now + chrono::Duration::days(1) }),
        )
        .await;
    let totals: Vec<(Value, Value)> = answer.data()["wallet"]["usageByAgent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|agent| (agent["agentId"].clone(), agent["total"].clone()))
        .collect();
    assert_eq!(
        totals,
        [
            (json!("ana"), json!(2)),
            (json!("bob"), json!(1)),
            (json!(null), json!(1))
        ]
    );
}

both_backends!(
    an_agent_budget_overrides_each_agent,
    budgets_count_their_action_and_their_agents_only,
    soft_budgets_charge_and_warn,
    repeats_count_once_and_reversals_give_back,
    agent_tokens_spend_for_themselves,
    budget_exceeded_wins_over_an_empty_pool,
    the_stream_tells_once_per_window,
    budgets_are_configured_by_admins_with_checked_input,
    usage_is_grouped_by_agent,
);
