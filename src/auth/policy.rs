//! The role table of the contract, in one place.
//!
//! | role | may |
//! |---|---|
//! | agent | read its own workspace; spend SIDEKICK (for itself: `agentId` is its `sub`) |
//! | service | what agent may, and spend any action for its workspace |
//! | admin | what agent may, and set budgets, the time zone, the low-balance threshold, automatic top-up and webhooks of its workspace (what it buys, plans and packs, arrives from the payment provider) |
//! | operator | any workspace: everything, and the operator-only operations (`purchaseTopUp` and `changePlan` among them: the billing back office) |
//!
//! The workspace is checked before the role, and another workspace is
//! refused exactly like a workspace that does not exist (NOT_FOUND), so a
//! token learns nothing about workspaces it does not belong to.

use super::Caller;
use crate::error::AppError;
use domain::catalogue::{Action, Role};
use domain::ids::WorkspaceId;

/// Something a caller may ask to do to a workspace's wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Read the wallet, its transactions and usage; subscribe.
    Read,
    /// Spend credits for an action.
    Spend(Action),
    /// Apply a purchased top-up pack.
    TopUp,
    /// Change the plan.
    ChangePlan,
    /// Configure the wallet (the low-balance threshold).
    Configure,
    /// Operator-only operations (adjust, reverse, enterprise allocation).
    Operate,
}

impl Operation {
    fn describe(self) -> &'static str {
        match self {
            Operation::Read => "read this wallet",
            Operation::Spend(Action::Sidekick) => "spend SIDEKICK",
            Operation::Spend(_) => "spend this action (only service tokens spend TRIAGE and AUTO_RESOLVE)",
            Operation::TopUp => {
                "apply top-ups (operator only: admins buy through the payment provider's checkout)"
            }
            Operation::ChangePlan => {
                "change the plan (operator only: plans follow the subscription at the payment provider)"
            }
            Operation::Configure => {
                "configure this wallet: budgets, time zone, low-balance threshold (admin or operator only)"
            }
            Operation::Operate => "perform operator operations",
        }
    }

    fn allowed_for(self, role: Role) -> bool {
        matches!(
            (self, role),
            (_, Role::Operator)
                | (Operation::Read, _)
                | (Operation::Spend(Action::Sidekick), _)
                | (Operation::Spend(_), Role::Service)
                | (Operation::Configure, Role::Admin)
        )
    }
}

/// The capability to act on one workspace's wallet, as one caller. Only
/// [`authorize`] makes one, so a service function that takes it cannot be
/// reached without the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletScope {
    workspace_id: WorkspaceId,
    actor: String,
    role: Role,
}

impl WalletScope {
    /// The workspace this capability is for.
    pub fn workspace_id(&self) -> &WorkspaceId {
        &self.workspace_id
    }

    /// Who acts (the token's subject), recorded on ledger rows.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Whether the caller is an operator.
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    /// A scope for payments the provider confirmed (`/webhooks/stripe`),
    /// acting as `stripe`.
    pub fn payment_provider(workspace_id: WorkspaceId) -> Self {
        Self {
            workspace_id,
            actor: "stripe".to_owned(),
            role: Role::Operator,
        }
    }

    /// A scope for internal jobs (the scheduler), acting as `system`.
    pub fn system(workspace_id: WorkspaceId) -> Self {
        Self {
            workspace_id,
            actor: "system".to_owned(),
            role: Role::Operator,
        }
    }
}

/// Decides whether `caller` may do `operation` on `requested` (or, when
/// `None`, on the caller's own workspace).
pub fn authorize(
    caller: &Caller,
    requested: Option<WorkspaceId>,
    operation: Operation,
) -> Result<WalletScope, AppError> {
    let workspace_id = match (requested, &caller.workspace_id, caller.role) {
        (Some(requested), _, Role::Operator) => requested,
        (Some(requested), Some(own), _) if &requested == own => requested,
        (Some(_), _, _) => return Err(AppError::NotFound("workspace")),
        (None, Some(own), _) => own.clone(),
        (None, None, _) => {
            return Err(AppError::invalid(
                "workspaceId",
                "is required with a token that has no workspace_id (operator)",
            ));
        }
    };
    if !operation.allowed_for(caller.role) {
        return Err(AppError::Forbidden(operation.describe()));
    }
    Ok(WalletScope {
        workspace_id,
        actor: caller.subject.clone(),
        role: caller.role,
    })
}

/// Whether `caller` may send free-form documents where the service accepts
/// only trusted ones (`TRUSTED_DOCUMENTS=enforce`): operators only.
pub fn may_send_free_form_documents(caller: &Caller) -> bool {
    caller.role == Role::Operator
}

/// Requires an operator token for an operation on no particular workspace
/// (creating one).
pub fn authorize_operator(caller: &Caller) -> Result<(), AppError> {
    if caller.role == Role::Operator {
        Ok(())
    } else {
        Err(AppError::Forbidden("perform operator operations"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, workspace: Option<&str>) -> Caller {
        Caller {
            subject: "u1".into(),
            workspace_id: workspace.map(|id| WorkspaceId::parse("w", id).expect("valid id")),
            role,
        }
    }

    fn ws(id: &str) -> Option<WorkspaceId> {
        Some(WorkspaceId::parse("w", id).expect("valid id"))
    }

    #[test]
    fn the_role_table() {
        use Operation::*;
        let operations = [
            Read,
            Spend(Action::Sidekick),
            Spend(Action::Triage),
            Spend(Action::AutoResolve),
            TopUp,
            ChangePlan,
            Operate,
        ];
        let table: [(Role, [bool; 7]); 4] = [
            (Role::Agent, [true, true, false, false, false, false, false]),
            (Role::Service, [true, true, true, true, false, false, false]),
            // Top-ups and plans are the operator's: admins buy through the payment provider.
            (Role::Admin, [true, true, false, false, false, false, false]),
            (Role::Operator, [true; 7]),
        ];
        for (role, allowed) in table {
            let workspace = (role != Role::Operator).then_some("a");
            for (operation, expected) in operations.iter().zip(allowed) {
                let result = authorize(&caller(role, workspace), ws("a"), *operation);
                assert_eq!(result.is_ok(), expected, "{role:?} {operation:?}");
            }
        }
    }

    #[test]
    fn another_workspace_is_not_found_before_any_role_check() {
        for role in [Role::Agent, Role::Service, Role::Admin] {
            let refused = authorize(&caller(role, Some("a")), ws("b"), Operation::Operate);
            assert!(matches!(refused, Err(AppError::NotFound("workspace"))));
        }
    }

    #[test]
    fn operators_must_name_the_workspace() {
        let refused = authorize(&caller(Role::Operator, None), None, Operation::Read);
        assert!(matches!(
            refused,
            Err(AppError::InvalidInput {
                field: "workspaceId",
                ..
            })
        ));
    }
}
