//! The catalogue of the contract, as data. Operators may edit these rows;
//! nothing in the code hard-codes a price, an allocation or a cost.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (code, display name, price in cents, monthly credits, is trial, trial days, order)
type PlanRow = (
    &'static str,
    &'static str,
    Option<i64>,
    Option<i64>,
    bool,
    Option<i32>,
    i32,
);

const PLANS: [PlanRow; 5] = [
    ("PRO_TRIAL", "Pro trial", Some(0), Some(300), true, Some(7), 0),
    ("STARTER", "Starter", Some(1499), Some(250), false, None, 1),
    ("PRO", "Pro", Some(2999), Some(1000), false, None, 2),
    ("BUSINESS", "Business", Some(5999), Some(2500), false, None, 3),
    ("ENTERPRISE", "Enterprise", None, None, false, None, 4),
];

const PACKS: [(&str, i64, i64, i32); 3] = [
    ("PACK_100", 500, 100, 0),
    ("PACK_500", 2000, 500, 1),
    ("PACK_2500", 8000, 2500, 2),
];

const ACTIONS: [(&str, i64, &str); 3] = [
    ("TRIAGE", 1, "A new ticket labelled and routed by the AI"),
    (
        "AUTO_RESOLVE",
        1,
        "One auto-resolve attempt, charged even when no reply is sent",
    ),
    ("SIDEKICK", 1, "The assistant loads when an agent opens a thread"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut plans = Query::insert()
            .into_table("plan")
            .columns([
                "code",
                "display_name",
                "price_cents",
                "currency",
                "monthly_credits",
                "is_trial",
                "trial_days",
                "sort_order",
            ])
            .to_owned();
        for (code, name, price, credits, is_trial, days, order) in PLANS {
            plans.values_panic([
                code.into(),
                name.into(),
                price.into(),
                "USD".into(),
                credits.into(),
                is_trial.into(),
                days.into(),
                order.into(),
            ]);
        }
        manager.exec_stmt(plans).await?;

        let mut packs = Query::insert()
            .into_table("top_up_pack")
            .columns(["code", "price_cents", "currency", "credits", "sort_order"])
            .to_owned();
        for (code, price, credits, order) in PACKS {
            packs.values_panic([
                code.into(),
                price.into(),
                "USD".into(),
                credits.into(),
                order.into(),
            ]);
        }
        manager.exec_stmt(packs).await?;

        let mut actions = Query::insert()
            .into_table("action_cost")
            .columns(["action", "credits", "description"])
            .to_owned();
        for (action, credits, description) in ACTIONS {
            actions.values_panic([action.into(), credits.into(), description.into()]);
        }
        manager.exec_stmt(actions).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["action_cost", "top_up_pack", "plan"] {
            manager
                .exec_stmt(Query::delete().from_table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
