//! The closed vocabularies of the ledger. Their *values* (prices, credits,
//! costs) are data in the catalogue tables; only the names are code, because
//! they are the public contract.

/// Declares a closed enum stored as its SCREAMING_CASE name.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and public name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::catalogue::UnknownName;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::catalogue::UnknownName(text.to_owned())),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use stored_enum;

/// A stored name that no variant matches: the database holds a value this
/// build does not know, which is a deployment error, never client input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stored name {0:?}")]
pub struct UnknownName(pub String);

stored_enum! {
    /// An AI action that costs credits. Everything else is free.
    Action {
        /// A new ticket labelled and routed.
        Triage => "TRIAGE",
        /// One auto-resolve attempt, charged even when nothing is sent.
        AutoResolve => "AUTO_RESOLVE",
        /// The assistant loads when an agent opens a thread.
        Sidekick => "SIDEKICK",
    }
}

stored_enum! {
    /// A plan of the catalogue.
    PlanCode {
        /// The 7-day trial with one-time credits.
        ProTrial => "PRO_TRIAL",
        /// Starter plan.
        Starter => "STARTER",
        /// Pro plan.
        Pro => "PRO",
        /// Business plan.
        Business => "BUSINESS",
        /// Enterprise: allocation set per workspace by an operator.
        Enterprise => "ENTERPRISE",
    }
}

stored_enum! {
    /// A purchasable top-up pack.
    PackCode {
        /// 100 credits.
        Pack100 => "PACK_100",
        /// 500 credits.
        Pack500 => "PACK_500",
        /// 2,500 credits.
        Pack2500 => "PACK_2500",
    }
}

stored_enum! {
    /// The kind of a ledger row.
    LedgerKind {
        /// Credits granted: trial or a period's allocation.
        Grant => "GRANT",
        /// One AI action paid.
        Spend => "SPEND",
        /// Unused credits of a grant that ended.
        Expire => "EXPIRE",
        /// A purchased pack.
        TopUp => "TOP_UP",
        /// An operator's correction, up or down.
        Adjustment => "ADJUSTMENT",
        /// The undoing of an earlier row.
        Reversal => "REVERSAL",
        /// Credits held for an action that started (amount 0: they move from
        /// available to held).
        Hold => "HOLD",
        /// A hold given back by its caller (amount 0).
        Release => "RELEASE",
        /// A hold given back at its expiry: nobody captured or released it
        /// in time (amount 0).
        HoldExpired => "HOLD_EXPIRED",
    }
}

stored_enum! {
    /// Where a grant's credits came from; decides the balance bucket.
    GrantSource {
        /// One-time trial credits (bucket: bonus).
        Trial => "TRIAL",
        /// A billing period's plan allocation (bucket: allocation).
        Allocation => "ALLOCATION",
        /// A purchased pack (bucket: purchased).
        Purchase => "PURCHASE",
        /// An operator's positive adjustment (bucket: bonus).
        Adjustment => "ADJUSTMENT",
    }
}

stored_enum! {
    /// The role claim of a token.
    Role {
        /// A helpdesk agent: reads its wallet, spends SIDEKICK.
        Agent => "agent",
        /// An AI worker: spends any action for its workspace.
        Service => "service",
        /// A workspace admin: tops up and changes the plan.
        Admin => "admin",
        /// Protodesk staff: any workspace.
        Operator => "operator",
    }
}

/// The three buckets a balance is reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BalanceSplit {
    /// Credits of the current plan period's allocation.
    pub allocation: i64,
    /// Credits from purchased packs; they never expire.
    pub purchased: i64,
    /// Trial credits and operator adjustments.
    pub bonus: i64,
}

impl BalanceSplit {
    /// Adds `credits` of a grant from `source` to its bucket.
    pub fn add(&mut self, source: GrantSource, credits: i64) {
        match source {
            GrantSource::Allocation => self.allocation += credits,
            GrantSource::Purchase => self.purchased += credits,
            GrantSource::Trial | GrantSource::Adjustment => self.bonus += credits,
        }
    }

    /// The whole balance.
    pub fn total(&self) -> i64 {
        self.allocation + self.purchased + self.bonus
    }
}

/// A top-up pack's catalogue row, as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackOffer {
    /// The pack.
    pub code: PackCode,
    /// Credits it grants.
    pub credits: i64,
    /// Its price in cents.
    pub price_cents: i64,
}

/// The smallest pack whose credits, added to `balance`, pay for `cost`:
/// what to suggest when a spend was refused.
pub fn smallest_pack_resuming(packs: &[PackOffer], balance: i64, cost: i64) -> Option<&PackOffer> {
    let missing = cost - balance;
    packs
        .iter()
        .filter(|pack| pack.credits >= missing)
        .min_by_key(|pack| (pack.credits, pack.price_cents))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(*action));
        }
        for kind in LedgerKind::ALL {
            assert_eq!(kind.as_str().parse::<LedgerKind>(), Ok(*kind));
        }
        assert!("triage".parse::<Action>().is_err());
    }

    #[test]
    fn the_smallest_sufficient_pack_is_suggested() {
        let packs = [
            PackOffer {
                code: PackCode::Pack500,
                credits: 500,
                price_cents: 2000,
            },
            PackOffer {
                code: PackCode::Pack100,
                credits: 100,
                price_cents: 500,
            },
        ];
        assert_eq!(
            smallest_pack_resuming(&packs, 0, 1).map(|p| p.code),
            Some(PackCode::Pack100)
        );
        assert_eq!(
            smallest_pack_resuming(&packs, 0, 101).map(|p| p.code),
            Some(PackCode::Pack500)
        );
        assert_eq!(smallest_pack_resuming(&packs, 0, 501).map(|p| p.code), None);
    }

    #[test]
    fn trial_and_adjustments_are_bonus_credits() {
        let mut split = BalanceSplit::default();
        split.add(GrantSource::Trial, 3);
        split.add(GrantSource::Adjustment, 2);
        split.add(GrantSource::Allocation, 10);
        split.add(GrantSource::Purchase, 100);
        assert_eq!(
            split,
            BalanceSplit {
                allocation: 10,
                purchased: 100,
                bonus: 5
            }
        );
        assert_eq!(split.total(), 115);
    }
}
