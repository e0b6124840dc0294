//! Goal: abusive requests are refused with a clear error, never a 5xx, and
//! the server keeps answering: 3,000 aliases, depth 100, too many fields,
//! introspection when it is switched off, and a seeded stream of random
//! bodies, headers and paths.
//! Method: real HTTP against a running app; after each abuse a normal
//! query must still work.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{Options, Random, TestApp, seed};

async fn still_answers(app: &TestApp) {
    let answer = app.gql(None, "{ actionCosts { action } }", json!({})).await;
    assert_eq!(answer.data()["actionCosts"].as_array().unwrap().len(), 3);
}

async fn oversized_documents_are_refused_before_validation(app: TestApp) {
    let aliases: String = (0..3_000).map(|i| format!("a{i}: __typename ")).collect();
    let answer = app.gql(None, &format!("{{ {aliases} }}"), json!({})).await;
    assert!(answer.status < 500);
    assert_eq!(answer.code(), "BAD_USER_INPUT");
    assert_eq!(
        answer.body["errors"][0]["message"],
        "the query has 3000 aliases; at most 30 are accepted"
    );

    let deep = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "ofType { ".repeat(100),
        " }".repeat(100)
    );
    let answer = app.gql(None, &deep, json!({})).await;
    assert!(answer.status < 500);
    assert_eq!(answer.code(), "BAD_USER_INPUT");
    assert!(
        answer.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nests brackets more than 40 levels deep"),
        "{}",
        answer.body
    );

    let over_depth = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "ofType { ".repeat(20),
        " }".repeat(20)
    );
    let answer = app.gql(None, &over_depth, json!({})).await;
    assert_eq!(answer.code(), "BAD_USER_INPUT");
    assert!(
        answer.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{}",
        answer.body
    );

    let fields = format!("{{ actionCosts {{ {} }} }}", "action ".repeat(600));
    let answer = app.gql(None, &fields, json!({})).await;
    assert_eq!(answer.code(), "BAD_USER_INPUT");
    assert_eq!(
        answer.body["errors"][0]["message"],
        "the query has 601 fields; at most 500 are accepted"
    );

    // At the limits, accepted.
    let thirty: String = (0..30).map(|i| format!("a{i}: __typename ")).collect();
    let answer = app.gql(None, &format!("{{ {thirty} }}"), json!({})).await;
    assert_eq!(answer.data()["a29"], "QueryRoot");
    still_answers(&app).await;
}

async fn introspection_follows_its_switch(app: TestApp) {
    let schema = "{ __schema { queryType { name } } }";
    let open = app.gql(None, schema, json!({})).await;
    assert_eq!(open.data()["__schema"]["queryType"]["name"], "QueryRoot");

    let closed = TestApp::spawn_beside(
        &app,
        Options {
            no_introspection: true,
            ..Options::default()
        },
    )
    .await;
    let refused = closed.gql(None, schema, json!({})).await;
    assert!(refused.status < 500);
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("introspection is switched off")
    );
    let refused_type = closed
        .gql(None, "{ __type(name: \"Wallet\") { name } }", json!({}))
        .await;
    assert_eq!(refused_type.code(), "BAD_USER_INPUT");
    let typename = closed.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(typename.data()["__typename"], "QueryRoot");
    still_answers(&closed).await;
}

const FRAGMENTS: [&str; 16] = [
    "{",
    "}",
    "\"query\"",
    ":",
    "\"",
    "mutation",
    "spendCredit",
    "(",
    ")",
    "input:",
    "$x",
    "[",
    "]",
    ",",
    "\\u0000",
    "wallet",
];

async fn random_garbage_never_gets_a_5xx(app: TestApp) {
    let seed = seed(0x5eed_cafe);
    let mut random = Random(seed);
    let token = app.token("service", Some("ws-none"));
    let paths = [
        "/graphql",
        "/graphql?query=",
        "/export/transactions.csv",
        "/nope",
        "/metrics",
    ];
    let content_types = [
        "application/json",
        "text/plain",
        "application/graphql",
        "multipart/form-data",
        "",
    ];
    for round in 0..300 {
        let body: String = (0..random.below(40))
            .map(|_| FRAGMENTS[random.below(FRAGMENTS.len())])
            .collect();
        let path = paths[random.below(paths.len())];
        let mut request = if random.below(3) == 0 {
            app.http.get(format!("{}{path}{body}", app.address))
        } else {
            app.http.post(format!("{}{path}", app.address)).body(body.clone())
        };
        let content_type = content_types[random.below(content_types.len())];
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        if random.below(2) == 0 {
            request = request.bearer_auth(&token);
        }
        let status = request.send().await.unwrap().status();
        assert!(
            status.as_u16() < 500,
            "seed {seed}, round {round}: {status} for {path} {body:?} (replay with SEED={seed})"
        );
    }
    still_answers(&app).await;
}

both_backends!(
    oversized_documents_are_refused_before_validation,
    introspection_follows_its_switch,
    random_garbage_never_gets_a_5xx,
);
