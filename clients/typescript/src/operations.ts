// Every document the kit sends. Each becomes a typed document (src/gql/)
// and an entry of the trusted-documents manifest: add a call here, run
// `npm run codegen`, and the server's copy of the manifest follows
// (assets/trusted-documents.json, checked by a test).
import { graphql } from "./gql/index.js";

export const BalanceFields = graphql(`
  fragment BalanceFields on Balance {
    total
    available
    held
    allocation
    purchased
    bonus
  }
`);

export const TransactionFields = graphql(`
  fragment TransactionFields on Transaction {
    id
    sequence
    kind
    amount
    balanceAfter
    heldAfter
    action
    reference
    actor
    idempotencyKey
    agentId
    holdId
    reversesTransactionId
    createdAt
  }
`);

export const BudgetUsageFields = graphql(`
  fragment BudgetUsageFields on BudgetUsage {
    budget {
      name
      appliesTo
      agentId
      action
      window
      limit
      mode
    }
    agentId
    used
    remaining
    resetsAt
  }
`);

export const HoldFields = graphql(`
  fragment HoldFields on Hold {
    id
    key
    state
    credits
    capturedCredits
    uncollectedCredits
    expiresAt
    action
    agentId
    reference
    createdAt
    resolvedAt
    reason
  }
`);

export const PackFields = graphql(`
  fragment PackFields on TopUpPack {
    code
    credits
    priceCents
    currency
  }
`);

export const WalletDocument = graphql(`
  query Wallet($workspaceId: ID) {
    wallet(workspaceId: $workspaceId) {
      workspaceId
      plan
      pendingPlan
      aiPaused
      lastSequence
      trialEndsAt
      currentPeriod {
        start
        end
      }
      balance {
        ...BalanceFields
      }
    }
  }
`);

export const TransactionsDocument = graphql(`
  query Transactions($workspaceId: ID, $first: Int, $after: String, $filter: TransactionFilter) {
    wallet(workspaceId: $workspaceId) {
      transactions(first: $first, after: $after, filter: $filter) {
        pageInfo {
          hasNextPage
          endCursor
        }
        edges {
          cursor
          node {
            ...TransactionFields
          }
        }
      }
    }
  }
`);

export const UsageDocument = graphql(`
  query Usage($workspaceId: ID, $from: DateTime!, $to: DateTime!, $bucket: UsageBucketSize!) {
    wallet(workspaceId: $workspaceId) {
      usage(from: $from, to: $to, bucket: $bucket) {
        start
        end
        total
        byAction {
          action
          credits
        }
      }
    }
  }
`);

export const SpendDocument = graphql(`
  mutation Spend($input: SpendCreditInput!) {
    spendCredit(input: $input) {
      outcome
      cost
      aiPaused
      nextResetAt
      transaction {
        ...TransactionFields
      }
      balance {
        ...BalanceFields
      }
      suggestedTopUp {
        ...PackFields
      }
      budget {
        ...BudgetUsageFields
      }
      budgetWarnings {
        ...BudgetUsageFields
      }
    }
  }
`);

export const BudgetsDocument = graphql(`
  query Budgets($workspaceId: ID, $agentId: ID) {
    wallet(workspaceId: $workspaceId) {
      budgetUsage(agentId: $agentId) {
        ...BudgetUsageFields
      }
    }
  }
`);

export const SetBudgetDocument = graphql(`
  mutation SetBudget($input: SetBudgetInput!) {
    setBudget(input: $input) {
      budget {
        name
        appliesTo
        agentId
        action
        window
        limit
        mode
      }
    }
  }
`);

export const RemoveBudgetDocument = graphql(`
  mutation RemoveBudget($input: RemoveBudgetInput!) {
    removeBudget(input: $input) {
      name
    }
  }
`);

export const ReserveDocument = graphql(`
  mutation Reserve($input: ReserveCreditsInput!) {
    reserveCredits(input: $input) {
      outcome
      aiPaused
      hold {
        ...HoldFields
      }
      balance {
        ...BalanceFields
      }
      budget {
        ...BudgetUsageFields
      }
      suggestedTopUp {
        ...PackFields
      }
    }
  }
`);

export const CaptureDocument = graphql(`
  mutation Capture($input: CaptureHoldInput!) {
    captureHold(input: $input) {
      replayed
      hold {
        ...HoldFields
      }
      transaction {
        ...TransactionFields
      }
      balance {
        ...BalanceFields
      }
    }
  }
`);

export const ReleaseDocument = graphql(`
  mutation Release($input: ReleaseHoldInput!) {
    releaseHold(input: $input) {
      replayed
      hold {
        ...HoldFields
      }
      transaction {
        ...TransactionFields
      }
      balance {
        ...BalanceFields
      }
    }
  }
`);

export const ExtendDocument = graphql(`
  mutation Extend($input: ExtendHoldInput!) {
    extendHold(input: $input) {
      replayed
      hold {
        ...HoldFields
      }
      transaction {
        ...TransactionFields
      }
      balance {
        ...BalanceFields
      }
    }
  }
`);

export const BalanceChangedDocument = graphql(`
  subscription BalanceChanged($workspaceId: ID, $afterSequence: Int) {
    balanceChanged(workspaceId: $workspaceId, afterSequence: $afterSequence) {
      kind
      sequence
      transactionId
      delta
      at
      budgetName
      agentId
      holdId
      balance {
        ...BalanceFields
      }
    }
  }
`);
