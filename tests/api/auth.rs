//! Goal: every token the contract refuses is refused with UNAUTHENTICATED,
//! each role can do exactly what the role table says (FORBIDDEN otherwise),
//! and another workspace is indistinguishable from a missing one.
//! Method: forge each kind of bad token by hand and call the API with it;
//! walk the role table operation by operation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use protodesk_credits::auth::Claims;
use protodesk_credits::config::JwtKeySource;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Options, TEST_SECRET, TestApp, fixture, mint};

const READ: &str = "{ wallet { balance { total } } }";

fn claims(role: &str, workspace: Option<&str>) -> Claims {
    Claims {
        sub: "someone".into(),
        workspace_id: workspace.map(str::to_owned),
        role: role.into(),
        exp: Utc::now().timestamp() + 600,
        iss: None,
        aud: None,
    }
}

fn sign(header: Header, claims: &impl serde::Serialize, key: &EncodingKey) -> String {
    encode(&header, claims, key).unwrap()
}

async fn code_of(app: &TestApp, token: Option<&str>) -> String {
    app.gql(token, READ, json!({})).await.code()
}

async fn bad_tokens_are_unauthenticated(app: TestApp) {
    app.create_workspace("ws-auth").await;
    let secret = EncodingKey::from_secret(TEST_SECRET.as_bytes());
    let valid = claims("agent", Some("ws-auth"));
    let no_exp = json!({ "sub": "someone", "workspace_id": "ws-auth", "role": "agent" });
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&valid).unwrap())
    );
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa_private.pem")).unwrap()).unwrap();
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("not-a-jwt".into())),
        (
            "bad signature",
            Some(sign(
                Header::new(Algorithm::HS256),
                &valid,
                &EncodingKey::from_secret(b"another-secret-entirely"),
            )),
        ),
        (
            "expired beyond the leeway",
            Some(mint(Claims {
                exp: Utc::now().timestamp() - 120,
                ..valid.clone()
            })),
        ),
        (
            "no exp",
            Some(sign(Header::new(Algorithm::HS256), &no_exp, &secret)),
        ),
        ("alg none", Some(alg_none)),
        (
            "another HMAC algorithm",
            Some(sign(Header::new(Algorithm::HS512), &valid, &secret)),
        ),
        (
            "an RSA algorithm",
            Some(sign(Header::new(Algorithm::RS256), &valid, &rsa)),
        ),
        ("unknown role", Some(mint(claims("superuser", Some("ws-auth"))))),
        ("agent without workspace", Some(mint(claims("agent", None)))),
        (
            "malformed workspace",
            Some(mint(claims("agent", Some("bad id!")))),
        ),
        (
            "empty subject",
            Some(mint(Claims {
                sub: String::new(),
                ..valid.clone()
            })),
        ),
        (
            "a subject with a bidi override",
            Some(mint(Claims {
                sub: "admin\u{202E}gpj.exe".into(),
                ..valid.clone()
            })),
        ),
        (
            "a subject with a line break",
            Some(mint(Claims {
                sub: "someone\nrole=operator".into(),
                ..valid.clone()
            })),
        ),
        (
            "exp further away than JWT_MAX_LIFETIME_SECONDS",
            Some(mint(Claims {
                exp: Utc::now().timestamp() + 24 * 3600 + 120,
                ..valid.clone()
            })),
        ),
        (
            "nbf an hour away",
            Some(sign(
                Header::new(Algorithm::HS256),
                &json!({ "sub": "someone", "workspace_id": "ws-auth", "role": "agent",
                         "exp": Utc::now().timestamp() + 600, "nbf": Utc::now().timestamp() + 3600 }),
                &secret,
            )),
        ),
    ];
    for (name, token) in cases {
        assert_eq!(code_of(&app, token.as_deref()).await, "UNAUTHENTICATED", "{name}");
    }
    // A header that is not `Bearer <token>`.
    let response = app
        .http
        .post(format!("{}/graphql", app.address))
        .header("authorization", format!("Token {}", mint(valid.clone())))
        .json(&json!({ "query": READ }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    // And the valid token works, so the refusals above are about the token;
    // so do a past nbf, a lifetime just under the limit and a Unicode name.
    let past_nbf = sign(
        Header::new(Algorithm::HS256),
        &json!({ "sub": "someone", "workspace_id": "ws-auth", "role": "agent",
                 "exp": Utc::now().timestamp() + 600, "nbf": Utc::now().timestamp() - 10 }),
        &secret,
    );
    // A not-before 30 s ahead: inside the leeway that absorbs clock skew.
    let near_nbf = sign(
        Header::new(Algorithm::HS256),
        &json!({ "sub": "someone", "workspace_id": "ws-auth", "role": "agent",
                 "exp": Utc::now().timestamp() + 600, "nbf": Utc::now().timestamp() + 30 }),
        &secret,
    );
    let day_long = mint(Claims {
        exp: Utc::now().timestamp() + 24 * 3600 - 60,
        sub: "Zoë Ångström".into(),
        ..valid.clone()
    });
    for token in [mint(valid), past_nbf, near_nbf, day_long] {
        assert_eq!(
            app.gql(Some(&token), READ, json!({})).await.data()["wallet"]["balance"]["total"],
            300
        );
    }
}

async fn issuer_and_audience_are_checked_when_configured(app: TestApp) {
    let strict = TestApp::spawn_with(
        app.backend,
        Options {
            issuer: Some("protodesk".into()),
            audience: Some("credits".into()),
            ..Options::default()
        },
    )
    .await;
    strict
        .create_workspace_with_token(
            "ws-iss",
            &mint(Claims {
                iss: Some("protodesk".into()),
                aud: Some("credits".into()),
                ..claims("operator", None)
            }),
        )
        .await;
    let good = Claims {
        iss: Some("protodesk".into()),
        aud: Some("credits".into()),
        ..claims("agent", Some("ws-iss"))
    };

    let cases = [
        (
            "wrong issuer",
            Claims {
                iss: Some("evil".into()),
                ..good.clone()
            },
        ),
        (
            "missing issuer",
            Claims {
                iss: None,
                ..good.clone()
            },
        ),
        (
            "wrong audience",
            Claims {
                aud: Some("other".into()),
                ..good.clone()
            },
        ),
        (
            "missing audience",
            Claims {
                aud: None,
                ..good.clone()
            },
        ),
    ];
    for (name, bad) in cases {
        assert_eq!(
            code_of(&strict, Some(&mint(bad))).await,
            "UNAUTHENTICATED",
            "{name}"
        );
    }
    assert_eq!(
        strict.gql(Some(&mint(good)), READ, json!({})).await.data()["wallet"]["balance"]["total"],
        300
    );
    strict.verify_ledger().await;
    strict.teardown().await;
}

async fn rs256_and_es256_keys_pin_their_algorithm(app: TestApp) {
    for (public, private, algorithm) in [
        ("rsa_public.pem", "rsa_private.pem", Algorithm::RS256),
        ("ec_public.pem", "ec_private.pem", Algorithm::ES256),
    ] {
        let keyed = TestApp::spawn_with(
            app.backend,
            Options {
                key: Some(JwtKeySource::PublicKeyFile(fixture(public))),
                ..Options::default()
            },
        )
        .await;
        let pem = std::fs::read(fixture(private)).unwrap();
        let signing = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let operator = sign(Header::new(algorithm), &claims("operator", None), &signing);
        keyed.create_workspace_with_token("ws-pk", &operator).await;
        let agent = sign(Header::new(algorithm), &claims("agent", Some("ws-pk")), &signing);
        // The classic confusion: HS256 "signed" with the public key's bytes.
        let public_bytes = std::fs::read(fixture(public)).unwrap();
        let confused = sign(
            Header::new(Algorithm::HS256),
            &claims("agent", Some("ws-pk")),
            &EncodingKey::from_secret(&public_bytes),
        );
        let hs256 = mint(claims("agent", Some("ws-pk")));

        assert_eq!(
            keyed.gql(Some(&agent), READ, json!({})).await.data()["wallet"]["balance"]["total"],
            300
        );
        assert_eq!(
            code_of(&keyed, Some(&confused)).await,
            "UNAUTHENTICATED",
            "{algorithm:?} vs HS256 confusion"
        );
        assert_eq!(
            code_of(&keyed, Some(&hs256)).await,
            "UNAUTHENTICATED",
            "{algorithm:?} vs HS256 secret"
        );
        keyed.verify_ledger().await;
        keyed.teardown().await;
    }
}

async fn another_workspace_is_refused_exactly_like_a_missing_one(app: TestApp) {
    app.create_workspace("ws-mine").await;
    app.create_workspace("ws-theirs").await;

    for role in ["agent", "service", "admin"] {
        let token = app.token(role, Some("ws-mine"));
        let theirs = app.wallet(&token, Some("ws-theirs")).await;
        let missing = app.wallet(&token, Some("ws-nobody")).await;
        assert_eq!(theirs.code(), "NOT_FOUND", "{role}");
        assert_eq!(
            theirs.body["errors"][0]["message"], missing.body["errors"][0]["message"],
            "{role}"
        );
        let spend = app
            .gql(
                Some(&token),
                "mutation { spendCredit(input: {workspaceId: \"ws-theirs\", action: SIDEKICK, idempotencyKey: \"x\"}) { outcome } }",
                json!({}),
            )
            .await;
        assert_eq!(spend.code(), "NOT_FOUND", "{role}");
        let top_up = app.top_up(&token, Some("ws-theirs"), "PACK_100", "p").await;
        assert_eq!(top_up.code(), "NOT_FOUND", "{role}");
        assert!(
            !theirs.body.to_string().contains("300"),
            "nothing of theirs is revealed"
        );
    }
    assert_eq!(app.balance_total("ws-theirs").await, 300);
    // An operator reaches any workspace, and a missing one is NOT_FOUND.
    assert_eq!(
        app.wallet(&app.operator(), Some("ws-nobody")).await.code(),
        "NOT_FOUND"
    );
}

async fn each_role_may_do_what_the_role_table_says(app: TestApp) {
    app.create_workspace("ws-roles").await;
    let ws = Some("ws-roles");
    // (role, SIDEKICK, TRIAGE, AUTO_RESOLVE, top-up, change plan, create workspace)
    let table = [
        ("agent", [true, false, false, false, false, false]),
        ("service", [true, true, true, false, false, false]),
        // Top-ups and plans: the operator only (admins buy through Stripe).
        ("admin", [true, false, false, false, false, false]),
        ("operator", [true, true, true, true, true, true]),
    ];
    for (role, allowed) in table {
        let token = if role == "operator" {
            app.operator()
        } else {
            app.token(role, ws)
        };
        let target = if role == "operator" { ws } else { None };
        let read = app.wallet(&token, target).await;
        assert!(read.body.get("errors").is_none(), "{role} reads");
        let mut results = Vec::new();
        for action in ["SIDEKICK", "TRIAGE", "AUTO_RESOLVE"] {
            let answer = app
                .gql(
                    Some(&token),
                    "mutation($ws: ID, $a: Action!, $k: String!) { spendCredit(input: {workspaceId: $ws, action: $a, idempotencyKey: $k}) { outcome } }",
                    json!({ "ws": target, "a": action, "k": format!("{role}-{action}") }),
                )
                .await;
            results.push(answer);
        }
        results.push(
            app.top_up(&token, target, "PACK_100", &format!("pay-{role}"))
                .await,
        );
        results.push(app.change_plan(&token, target, "STARTER", None).await);
        results.push(
            app.gql(
                Some(&token),
                "mutation($id: ID!) { createWorkspace(input: {workspaceId: $id, name: \"n\"}) { wallet { workspaceId } } }",
                json!({ "id": format!("ws-by-{role}") }),
            )
            .await,
        );
        for (index, (answer, expected)) in results.iter().zip(allowed).enumerate() {
            if expected {
                assert!(
                    answer.body.get("errors").is_none(),
                    "{role} operation {index}: {}",
                    answer.body
                );
            } else {
                assert_eq!(answer.code(), "FORBIDDEN", "{role} operation {index}");
            }
        }
    }
    // Admins may not pick ENTERPRISE; operators set it with an allocation.
    let admin = app.token("admin", ws);
    assert_eq!(
        app.change_plan(&admin, None, "ENTERPRISE", Some(5000))
            .await
            .code(),
        "FORBIDDEN"
    );
    let enterprise = app
        .change_plan(&app.operator(), ws, "ENTERPRISE", Some(5000))
        .await;
    assert_eq!(enterprise.data()["changePlan"]["wallet"]["plan"], "ENTERPRISE");
}

async fn operators_must_name_the_workspace(app: TestApp) {
    let answer = app.gql(Some(&app.operator()), READ, json!({})).await;
    assert_eq!(answer.code(), "BAD_USER_INPUT");
}

fn key_set_file(directory: &std::path::Path, keys: &[(&str, &str)]) -> std::path::PathBuf {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, secret)| {
            json!({ "kty": "oct", "kid": kid, "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(secret) })
        })
        .collect();
    let path = directory.join(format!("keys-{}.json", keys.len()));
    std::fs::write(&path, json!({ "keys": keys }).to_string()).unwrap();
    path
}

/// A key set holding an RSA public key (`rsa-1`): an RS256 token signed
/// with its private key is accepted; an HS256 token under the same kid,
/// signed with the public key's bytes as an HMAC secret (the algorithm
/// confusion attack), is refused, whichever bytes it used.
async fn a_key_sets_rsa_key_accepts_rs256_only(app: TestApp) {
    let directory = tempfile::tempdir().unwrap();
    let jwk: Value = serde_json::from_slice(&std::fs::read(fixture("rsa_public.jwk.json")).unwrap()).unwrap();
    let path = directory.path().join("keys-rsa.json");
    std::fs::write(&path, json!({ "keys": [jwk] }).to_string()).unwrap();
    let with_rsa = TestApp::spawn_beside(
        &app,
        Options {
            key: Some(JwtKeySource::KeySetFile(path)),
            ..Options::default()
        },
    )
    .await;
    let private = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa_private.pem")).unwrap()).unwrap();
    let mut rs256 = Header::new(Algorithm::RS256);
    rs256.kid = Some("rsa-1".to_owned());
    with_rsa
        .create_workspace_with_token(
            "ws-rsa",
            &sign(rs256.clone(), &claims("operator", None), &private),
        )
        .await;
    let agent = claims("agent", Some("ws-rsa"));
    let good = sign(rs256, &agent, &private);
    assert_eq!(
        with_rsa.gql(Some(&good), READ, json!({})).await.data()["wallet"]["balance"]["total"],
        300
    );
    let pem = std::fs::read(fixture("rsa_public.pem")).unwrap();
    let modulus = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    for (case, secret) in [("the PEM", pem), ("the modulus", modulus)] {
        let mut hs256 = Header::new(Algorithm::HS256);
        hs256.kid = Some("rsa-1".to_owned());
        let forged = sign(hs256, &agent, &EncodingKey::from_secret(&secret));
        let answer = with_rsa.gql(Some(&forged), READ, json!({})).await;
        assert_eq!(answer.code(), "UNAUTHENTICATED", "HS256 with {case}");
        assert_eq!(
            answer.body["errors"][0]["message"],
            "authentication required: the token's algorithm is not accepted",
            "HS256 with {case}"
        );
    }
}

fn with_kid(kid: Option<&str>, claims: &Claims, secret: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    sign(header, claims, &EncodingKey::from_secret(secret.as_bytes()))
}

async fn keys_rotate_by_kid_with_a_minute_of_leeway(app: TestApp) {
    const OLD: &str = "old-secret-old-secret-old";
    const NEW: &str = "new-secret-new-secret-new";
    let directory = tempfile::tempdir().unwrap();
    let both = TestApp::spawn_beside(
        &app,
        Options {
            key: Some(JwtKeySource::KeySetFile(key_set_file(
                directory.path(),
                &[("2026-10", OLD), ("2026-11", NEW)],
            ))),
            ..Options::default()
        },
    )
    .await;
    both.create_workspace_with_token(
        "ws-kid",
        &with_kid(Some("2026-11"), &claims("operator", None), NEW),
    )
    .await;
    let agent = claims("agent", Some("ws-kid"));
    let old = with_kid(Some("2026-10"), &agent, OLD);
    let new = with_kid(Some("2026-11"), &agent, NEW);
    for token in [&old, &new] {
        assert_eq!(
            both.gql(Some(token), READ, json!({})).await.data()["wallet"]["balance"]["total"],
            300
        );
    }
    let cases = [
        (
            "a kid naming another key",
            with_kid(Some("2026-11"), &agent, OLD),
            "the token's signature is not valid",
        ),
        (
            "an unknown kid",
            with_kid(Some("2025-01"), &agent, OLD),
            "the token's key id (kid) is not known",
        ),
        (
            "no kid",
            with_kid(None, &agent, NEW),
            "the token has no key id (kid)",
        ),
        (
            "expired 90 s ago",
            with_kid(
                Some("2026-11"),
                &Claims {
                    exp: Utc::now().timestamp() - 90,
                    ..agent.clone()
                },
                NEW,
            ),
            "the token has expired",
        ),
    ];
    for (case, token, message) in cases {
        let answer = both.gql(Some(&token), READ, json!({})).await;
        assert_eq!(answer.code(), "UNAUTHENTICATED", "{case}");
        assert_eq!(
            answer.body["errors"][0]["message"],
            format!("authentication required: {message}"),
            "{case}"
        );
    }
    let skewed = with_kid(
        Some("2026-11"),
        &Claims {
            exp: Utc::now().timestamp() - 30,
            ..agent.clone()
        },
        NEW,
    );
    assert_eq!(
        both.gql(Some(&skewed), READ, json!({})).await.data()["wallet"]["balance"]["total"],
        300,
        "30 s past exp is within the leeway"
    );

    // The old key retired: its tokens stop working, the new ones go on.
    let rotated = TestApp::spawn_beside(
        &app,
        Options {
            key: Some(JwtKeySource::KeySetFile(key_set_file(
                directory.path(),
                &[("2026-11", NEW)],
            ))),
            ..Options::default()
        },
    )
    .await;
    let refused = rotated.gql(Some(&old), READ, json!({})).await;
    assert_eq!(
        refused.body["errors"][0]["message"],
        "authentication required: the token's key id (kid) is not known"
    );
    assert_eq!(
        rotated.gql(Some(&new), READ, json!({})).await.data()["wallet"]["balance"]["total"],
        300
    );
}

both_backends!(
    keys_rotate_by_kid_with_a_minute_of_leeway,
    a_key_sets_rsa_key_accepts_rs256_only,
    bad_tokens_are_unauthenticated,
    issuer_and_audience_are_checked_when_configured,
    rs256_and_es256_keys_pin_their_algorithm,
    another_workspace_is_refused_exactly_like_a_missing_one,
    each_role_may_do_what_the_role_table_says,
    operators_must_name_the_workspace,
);

#[test]
fn secrets_are_redacted_from_debug_output() {
    use protodesk_credits::auth::TokenVerifier;
    use protodesk_credits::config::JwtConfig;
    const SECRET: &str = "very-secret-value-0042";
    let config = JwtConfig {
        key: JwtKeySource::Secret(secrecy::SecretString::from(SECRET.to_owned())),
        issuer: None,
        audience: None,
        max_lifetime: protodesk_credits::config::JWT_MAX_LIFETIME_DEFAULT,
    };
    let verifier = TokenVerifier::from_config(&config).unwrap();
    let token = sign(
        Header::new(Algorithm::HS256),
        &claims("agent", Some("ws-debug")),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    let caller = verifier.verify(&token).unwrap();
    for text in [
        format!("{config:?}"),
        format!("{verifier:?}"),
        format!("{caller:?}"),
    ] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains(&token), "{text}");
    }
    assert!(format!("{config:?}").contains("REDACTED"), "{config:?}");
}
