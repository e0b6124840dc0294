//! A hold's life: expiry by the sweep or the next write (clock-driven),
//! extension, refusals, tenancy, and the grants it pins across a period's
//! end and a trial's.

use chrono::Duration;
use futures_util::future::join_all;

use super::{Ask, hold_id, wallet_of};
use crate::both_backends;
use crate::helpers::TestApp;

/// A hold left alone is released by the sweep after its time to live,
/// once, and says so (`credits.hold_expired`); an extended one is not.
async fn a_hold_left_alone_expires_by_the_sweep_and_an_extended_one_does_not(app: TestApp) {
    let service = wallet_of(&app, "ws-hold-expiry", 100).await;
    let ttl = Ask {
        ttl: Some(60),
        ..Ask::of(10)
    };
    let forgotten = hold_id(&app.reserve_ok(&service, "forgotten", &ttl).await);
    let alive = hold_id(&app.reserve_ok(&service, "alive", &ttl).await);
    app.clock.set(app.clock_now() + Duration::seconds(50));
    let extended = app.extend(&service, &alive, 300).await;
    assert_eq!(extended.data()["extendHold"]["hold"]["state"], "HELD");
    // Before its expiry the sweep leaves it.
    let report = app.ledger.roll_over_periods(app.clock_now()).await.unwrap();
    assert_eq!(report.wallets_changed, 0);
    app.clock.set(app.clock_now() + Duration::seconds(11));
    let now = app.clock_now();
    let (first, second) = tokio::join!(
        app.ledger.roll_over_periods(now),
        app.ledger.roll_over_periods(now)
    );
    assert_eq!(
        first.unwrap().wallets_changed + second.unwrap().wallets_changed,
        1
    );
    assert_eq!(app.held_balance(&service).await, (100, 90, 10));
    let holds = app.holds(&service, None).await;
    assert_eq!(
        holds,
        vec![
            ("alive".to_owned(), "HELD".to_owned(), 10),
            ("forgotten".to_owned(), "EXPIRED".to_owned(), 10)
        ]
    );
    let rows = app.ledger_rows("ws-hold-expiry").await;
    assert_eq!(rows.iter().filter(|(kind, _)| kind == "HOLD_EXPIRED").count(), 1);
    let told = app
        .query_i64("SELECT COUNT(*) FROM outbox_event WHERE event_type = 'credits.hold_expired'")
        .await;
    assert_eq!(told, 1);
    // Expired, it cannot be captured, released or extended; nothing is written.
    for code in [
        app.capture(&service, &forgotten, None).await.code(),
        app.release(&service, &forgotten, "late").await.code(),
        app.extend(&service, &forgotten, 60).await.code(),
    ] {
        assert_eq!(code, "HOLD_NOT_ACTIVE");
    }
    assert_eq!(app.ledger_rows("ws-hold-expiry").await, rows);
}

/// Without the sweep, the next write of the wallet expires a due hold
/// first (here: a spend that needs its credits).
async fn the_next_write_expires_a_due_hold_first(app: TestApp) {
    let service = wallet_of(&app, "ws-hold-next", 10).await;
    app.reserve_ok(
        &service,
        "all",
        &Ask {
            ttl: Some(30),
            ..Ask::of(10)
        },
    )
    .await;
    assert_eq!(
        app.spend_ok(&service, "TRIAGE", "s-1").await["outcome"],
        "INSUFFICIENT_CREDITS"
    );
    app.clock.set(app.clock_now() + Duration::seconds(31));
    assert_eq!(
        app.spend_ok(&service, "TRIAGE", "s-2").await["outcome"],
        "CHARGED"
    );
    assert_eq!(app.held_balance(&service).await, (9, 9, 0));
    let kinds: Vec<String> = app
        .ledger_rows("ws-hold-next")
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(kinds, ["GRANT", "HOLD", "HOLD_EXPIRED", "SPEND"]);
}

/// A release and an expiry racing (the sweep at the instant of expiry and
/// ten releases) give the credits back once.
async fn a_release_and_an_expiry_racing_give_back_once(app: TestApp) {
    let service = wallet_of(&app, "ws-hold-race-end", 50).await;
    let id = hold_id(
        &app.reserve_ok(
            &service,
            "r",
            &Ask {
                ttl: Some(5),
                ..Ask::of(20)
            },
        )
        .await,
    );
    app.clock.set(app.clock_now() + Duration::seconds(5));
    let now = app.clock_now();
    let releases = join_all((0..10).map(|_| {
        let (app, service, id) = (app.clone(), service.clone(), id.clone());
        async move { app.release(&service, &id, "cancelled").await.code_or_ok() }
    }));
    let (sweep, releases) = tokio::join!(app.ledger.roll_over_periods(now), releases);
    sweep.unwrap();
    assert!(
        releases
            .iter()
            .all(|code| code == "HOLD_NOT_ACTIVE" || code == "OK"),
        "{releases:?}"
    );
    assert!(releases.iter().filter(|code| *code == "OK").count() <= 1);
    let rows = app.ledger_rows("ws-hold-race-end").await;
    let ends = rows
        .iter()
        .filter(|(kind, _)| kind == "RELEASE" || kind == "HOLD_EXPIRED")
        .count();
    assert_eq!(ends, 1, "{rows:?}");
    assert_eq!(app.held_balance(&service).await, (50, 50, 0));
}

/// Bad input is refused and changes nothing; a hold of another workspace
/// is NOT_FOUND; an agent moves only its own holds.
async fn bad_input_and_other_tenants_change_nothing(app: TestApp) {
    let service = wallet_of(&app, "ws-hold-input", 100).await;
    for (ask, field) in [
        (Ask::of(0), "credits"),
        (Ask::of(1_000_001), "credits"),
        (
            Ask {
                ttl: Some(0),
                ..Ask::of(1)
            },
            "ttlSeconds",
        ),
        (
            Ask {
                ttl: Some(86_401),
                ..Ask::of(1)
            },
            "ttlSeconds",
        ),
    ] {
        let answer = app.reserve(&service, "bad", &ask).await;
        assert_eq!(answer.code(), "BAD_USER_INPUT", "{field}");
    }
    let id = hold_id(&app.reserve_ok(&service, "good", &Ask::of(5)).await);
    assert_eq!(app.capture(&service, &id, Some(0)).await.code(), "BAD_USER_INPUT");
    assert_eq!(app.release(&service, &id, " ").await.code(), "BAD_USER_INPUT");
    assert_eq!(
        app.capture(&service, "not-a-number", None).await.code(),
        "BAD_USER_INPUT"
    );
    assert_eq!(app.capture(&service, "999999", None).await.code(), "NOT_FOUND");
    wallet_of(&app, "ws-hold-other", 100).await;
    let stranger = app.token("service", Some("ws-hold-other"));
    assert_eq!(app.capture(&stranger, &id, None).await.code(), "NOT_FOUND");
    assert_eq!(app.release(&stranger, &id, "mine").await.code(), "NOT_FOUND");
    // Agent tokens reserve SIDEKICK for themselves and move only their own.
    let agent = app.token("agent", Some("ws-hold-input"));
    let sidekick = Ask {
        action: "SIDEKICK",
        ..Ask::of(2)
    };
    let own = hold_id(&app.reserve_ok(&agent, "agent-hold", &sidekick).await);
    let forbidden = app
        .reserve(
            &agent,
            "agent-triage",
            &Ask {
                action: "TRIAGE",
                ..Ask::of(1)
            },
        )
        .await;
    assert_eq!(forbidden.code(), "FORBIDDEN");
    let theirs = hold_id(
        &app.reserve_ok(
            &service,
            "for-agent-2",
            &Ask {
                agent: Some("agent-2"),
                ..sidekick.clone()
            },
        )
        .await,
    );
    assert_eq!(app.release(&agent, &theirs, "not mine").await.code(), "FORBIDDEN");
    app.release(&agent, &own, "closed the thread").await.data();
    assert_eq!(app.held_balance(&service).await, (100, 93, 7));
}

/// A period's end while its allocation's credits are held: the free ones
/// expire, the held ones wait and are charged after the reset; the new
/// period's allocation comes whole.
async fn a_period_reset_while_held_charges_the_old_credits(app: TestApp) {
    app.set_trial_credits(0).await;
    app.create_workspace("ws-hold-reset").await;
    let admin = app.token("admin", Some("ws-hold-reset"));
    app.set_plan(&admin, "PRO", None).await.data();
    let service = app.token("service", Some("ws-hold-reset"));
    let period = app.wallet(&admin, None).await;
    let end: chrono::DateTime<chrono::Utc> = period.data()["wallet"]["currentPeriod"]["end"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    app.clock.set(end - Duration::hours(1));
    let id = hold_id(
        &app.reserve_ok(
            &service,
            "long",
            &Ask {
                ttl: Some(7200),
                ..Ask::of(40)
            },
        )
        .await,
    );
    app.clock.set(end + Duration::minutes(1));
    app.ledger.roll_over_periods(app.clock_now()).await.unwrap();
    // 1,000 of the old period: 960 expired, 40 held; 1,000 new.
    assert_eq!(app.held_balance(&service).await, (1040, 1000, 40));
    let captured = app.capture(&service, &id, Some(25)).await;
    assert_eq!(captured.data()["captureHold"]["transaction"]["amount"], -25);
    // The 15 not charged were the old period's: they expire, not return.
    assert_eq!(app.held_balance(&service).await, (1000, 1000, 0));
    let rows = app.ledger_rows("ws-hold-reset").await;
    assert_eq!(rows.last().unwrap(), &("EXPIRE".to_owned(), -15));
}

/// A trial that ends while its credits are held: a release after the end
/// lets them expire.
async fn a_trial_ending_while_held_expires_them_on_release(app: TestApp) {
    let service = wallet_of(&app, "ws-hold-trial", 30).await;
    let start = app.clock_now();
    app.clock.set(start + Duration::days(7) - Duration::hours(1));
    let id = hold_id(
        &app.reserve_ok(
            &service,
            "t",
            &Ask {
                ttl: Some(7200),
                ..Ask::of(10)
            },
        )
        .await,
    );
    app.clock.set(start + Duration::days(7) + Duration::minutes(1));
    app.extend(&service, &id, 600).await.data();
    // The trial's 20 free credits expired; its 10 held wait.
    assert_eq!(app.held_balance(&service).await, (10, 0, 10));
    app.release(&service, &id, "never ran").await.data();
    assert_eq!(app.held_balance(&service).await, (0, 0, 0));
}

/// An upgrade while credits are held raises the allocation and leaves the
/// hold as it was; a downgrade waits for the reset, where the old
/// allocation's free credits expire and its held ones wait for the hold.
async fn an_upgrade_and_a_downgrade_while_held_keep_the_hold_exact(app: TestApp) {
    app.set_trial_credits(0).await;
    app.create_workspace("ws-hold-plans").await;
    let admin = app.token("admin", Some("ws-hold-plans"));
    app.set_plan(&admin, "STARTER", None).await.data();
    let service = app.token("service", Some("ws-hold-plans"));
    let id = hold_id(
        &app.reserve_ok(
            &service,
            "up",
            &Ask {
                ttl: Some(3600),
                ..Ask::of(200)
            },
        )
        .await,
    );
    assert_eq!(app.held_balance(&service).await, (250, 50, 200));
    app.set_plan(&admin, "PRO", None).await.data();
    // STARTER's 250 raised to PRO's 1,000 in the same grant: 750 more.
    assert_eq!(app.held_balance(&service).await, (1000, 800, 200));
    app.capture(&service, &id, None).await.data();
    assert_eq!(app.held_balance(&service).await, (800, 800, 0));
    // Downgrade to STARTER, hold 300 just before the reset, capture after.
    app.set_plan(&admin, "STARTER", None).await.data();
    let end: chrono::DateTime<chrono::Utc> = app.wallet(&admin, None).await.data()["wallet"]["currentPeriod"]
        ["end"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    app.clock.set(end - Duration::minutes(10));
    let late = hold_id(
        &app.reserve_ok(
            &service,
            "late",
            &Ask {
                ttl: Some(3600),
                ..Ask::of(300)
            },
        )
        .await,
    );
    app.clock.set(end + Duration::minutes(1));
    app.ledger.roll_over_periods(app.clock_now()).await.unwrap();
    // 500 free expired, 300 held wait; STARTER's 250 granted.
    assert_eq!(app.held_balance(&service).await, (550, 250, 300));
    app.capture(&service, &late, Some(300)).await.data();
    assert_eq!(app.held_balance(&service).await, (250, 250, 0));
}

both_backends!(
    an_upgrade_and_a_downgrade_while_held_keep_the_hold_exact,
    a_hold_left_alone_expires_by_the_sweep_and_an_extended_one_does_not,
    the_next_write_expires_a_due_hold_first,
    a_release_and_an_expiry_racing_give_back_once,
    bad_input_and_other_tenants_change_nothing,
    a_period_reset_while_held_charges_the_old_credits,
    a_trial_ending_while_held_expires_them_on_release,
);
