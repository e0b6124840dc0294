/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
/** An AI action that costs credits. */
export type Action =
  /** One auto-resolve attempt (charged even when nothing is sent). */
  | 'AUTO_RESOLVE'
  /** The assistant loads when an agent opens a thread. */
  | 'SIDEKICK'
  /** A new ticket labelled and routed. */
  | 'TRIAGE';

/** What a balance event reports. */
export type BalanceChangeKind =
  /** An operator's correction. */
  | 'ADJUSTMENT'
  /**
   * A budget's window was exhausted (once per window): `budgetName` and
   * `agentId` name it.
   */
  | 'BUDGET_EXCEEDED'
  /** Credits expired. */
  | 'EXPIRE'
  /** Credits granted. */
  | 'GRANT'
  /** Credits held (`holdId`); a capture is a SPEND with its `holdId`. */
  | 'HOLD'
  /** A hold expired. */
  | 'HOLD_EXPIRED'
  /** The balance fell below the low-balance threshold. */
  | 'LOW_BALANCE'
  /** A hold released. */
  | 'RELEASE'
  /** A transaction undone. */
  | 'REVERSAL'
  /** The current balance: the first event, or a fresh start after falling behind. */
  | 'SNAPSHOT'
  /** An AI action paid. */
  | 'SPEND'
  /** A pack bought. */
  | 'TOP_UP';

/** What a budget does at its limit. */
export type BudgetMode =
  /** Refuses a spend that would go over: outcome BUDGET_EXCEEDED. */
  | 'HARD'
  /** Charges, and lists the budget in `budgetWarnings` once over. */
  | 'SOFT';

/** Whose spends a budget counts. */
export type BudgetTarget =
  /**
   * One agent's spends (`agentId`); replaces an EACH_AGENT budget of the
   * same action and window for that agent.
   */
  | 'AGENT'
  /**
   * Each agent's spends, one counter per agent (spends naming no agent
   * are not counted).
   */
  | 'EACH_AGENT'
  /** Every spend of the workspace, as one counter. */
  | 'WORKSPACE';

/** How long a budget's counter lasts. */
export type BudgetWindow =
  /** The wallet's billing period (the trial counts as one). */
  | 'BILLING_PERIOD'
  /** A calendar day in the workspace's time zone (`Wallet.timeZone`). */
  | 'DAY';

/** Input of `captureHold`. */
export type CaptureHoldInput = {
  /**
   * Credits the action cost, 1 to 1,000,000; default: what is held.
   * Less than held gives the rest back; more takes the difference from
   * what is available as far as it and the HARD budgets allow
   * (`uncollectedCredits` says what could not be).
   */
  credits?: number | null | undefined;
  /** The hold. */
  holdId: string;
};

/** Input of `extendHold`. */
export type ExtendHoldInput = {
  /** The hold. */
  holdId: string;
  /** Seconds from now until it expires: 1 to 86,400, default 600. */
  ttlSeconds?: number | null | undefined;
};

/** Where a hold is in its life. */
export type HoldState =
  /** Charged: a SPEND transaction took what the action cost. */
  | 'CAPTURED'
  /** Given back because nobody captured or released it before `expiresAt`. */
  | 'EXPIRED'
  /** Credits reserved, waiting for a capture or a release. */
  | 'HELD'
  /** Given back by its caller. */
  | 'RELEASED';

/** A plan of the catalogue. */
export type PlanCode =
  /** Business. */
  | 'BUSINESS'
  /** Enterprise: allocation set per workspace by an operator. */
  | 'ENTERPRISE'
  /** Pro. */
  | 'PRO'
  /** Free 7-day trial with one-time credits. */
  | 'PRO_TRIAL'
  /** Starter. */
  | 'STARTER';

/** Input of `releaseHold`. */
export type ReleaseHoldInput = {
  /** The hold. */
  holdId: string;
  /** Why the action never ran, 1 to 200 characters. */
  reason: string;
};

/** Input of `removeBudget`. */
export type RemoveBudgetInput = {
  /** The budget's name. */
  name: string;
  /** The workspace; defaults to the token's. */
  workspaceId?: string | null | undefined;
};

/** Input of `reserveCredits`. */
export type ReserveCreditsInput = {
  /** The action the credits are for. */
  action: Action;
  /** The agent the action is for (agent tokens: their own `sub`). */
  agentId?: string | null | undefined;
  /** Credits to hold, 1 to 1,000,000; default: the action's cost. */
  credits?: number | null | undefined;
  /**
   * 1 to 200 characters, unique per workspace among hold keys for the
   * life of the ledger: a retry with the same key and input is answered
   * DUPLICATE with the hold it placed; another input under it is
   * IDEMPOTENCY_CONFLICT.
   */
  holdKey: string;
  /** Your reference (ticket or thread id), at most 200 characters. */
  reference?: string | null | undefined;
  /**
   * Seconds until the hold expires unless captured, released or
   * extended: 1 to 86,400, default 600.
   */
  ttlSeconds?: number | null | undefined;
  /** The workspace; defaults to the token's. */
  workspaceId?: string | null | undefined;
};

/** What `reserveCredits` did. */
export type ReserveOutcome =
  /** A HARD budget would go over its limit: nothing was held. */
  | 'BUDGET_EXCEEDED'
  /** This hold key already placed this very hold; nothing was held again. */
  | 'DUPLICATE'
  /** The credits are held. */
  | 'HELD'
  /** Fewer credits are available than asked: nothing was held. */
  | 'INSUFFICIENT_CREDITS';

/**
 * Input of `setBudget`: creates the budget, or updates the one of that
 * name. Changing whose spends it counts (target, agent, action, window)
 * starts its counters afresh; changing the limit or mode keeps them.
 */
export type SetBudgetInput = {
  /** The action counted; null for every action. */
  action?: Action | null | undefined;
  /** Required for AGENT, refused otherwise. */
  agentId?: string | null | undefined;
  /** Whose spends it counts. */
  appliesTo: BudgetTarget;
  /** Credits per window, 0 or more. */
  limit: number;
  /** HARD or SOFT. */
  mode: BudgetMode;
  /** 1 to 64 characters, unique in the workspace. */
  name: string;
  /** The window. */
  window: BudgetWindow;
  /** The workspace; defaults to the token's. */
  workspaceId?: string | null | undefined;
};

/** Input of `spendCredit`. */
export type SpendCreditInput = {
  /** The action to pay for. */
  action: Action;
  /**
   * The agent the action is for (Sidekick: the agent who opened the
   * thread; triage has none), counted by agent budgets. Agent tokens
   * spend for their own `sub`: it is the default, and another value is
   * FORBIDDEN.
   */
  agentId?: string | null | undefined;
  /**
   * 1 to 200 characters, unique per workspace for the life of the ledger;
   * a retry with the same key and input is answered DUPLICATE.
   */
  idempotencyKey: string;
  /** Your reference (ticket or thread id), at most 200 characters. */
  reference?: string | null | undefined;
  /** The workspace to charge; defaults to the token's. */
  workspaceId?: string | null | undefined;
};

/** What a spend did. */
export type SpendOutcome =
  /**
   * A HARD budget would go over its limit: nothing was charged (the
   * payload's `budget` names it; a top-up would not help).
   */
  | 'BUDGET_EXCEEDED'
  /** The action was paid. */
  | 'CHARGED'
  /** This idempotency key already paid for this request; nothing was charged again. */
  | 'DUPLICATE'
  /** Not enough credits: nothing was charged, AI should pause. */
  | 'INSUFFICIENT_CREDITS';

/** A top-up pack. */
export type TopUpPackCode =
  /** 100 credits. */
  | 'PACK_100'
  /** 500 credits. */
  | 'PACK_500'
  /** 2,500 credits. */
  | 'PACK_2500';

/** Filters of `Wallet.transactions`; every given filter must match. */
export type TransactionFilter = {
  /** Only these actions. */
  actions?: Array<Action> | null | undefined;
  /** Created at or after this instant. */
  from?: string | null | undefined;
  /** Only these kinds. */
  kinds?: Array<TransactionKind> | null | undefined;
  /** Exactly this reference. */
  reference?: string | null | undefined;
  /** Created before this instant. */
  to?: string | null | undefined;
};

/** The kind of a ledger transaction. */
export type TransactionKind =
  /** An operator's correction. */
  | 'ADJUSTMENT'
  /** Unused credits of a grant that ended. */
  | 'EXPIRE'
  /** Trial credits or a period's allocation granted. */
  | 'GRANT'
  /** Credits held for an action that started (amount 0: `held` rises). */
  | 'HOLD'
  /** A hold that expired before anyone captured or released it (amount 0). */
  | 'HOLD_EXPIRED'
  /** A hold released by its caller (amount 0: `held` falls). */
  | 'RELEASE'
  /** The undoing of an earlier transaction. */
  | 'REVERSAL'
  /** One AI action paid. */
  | 'SPEND'
  /** A purchased pack. */
  | 'TOP_UP';

/** A usage bucket size; buckets are calendar periods in UTC. */
export type UsageBucketSize =
  /** Midnight to midnight. */
  | 'DAY'
  /** Calendar months. */
  | 'MONTH'
  /** ISO weeks, from Monday. */
  | 'WEEK';

export type BalanceFieldsFragment = { total: number, available: number, held: number, allocation: number, purchased: number, bonus: number };

export type TransactionFieldsFragment = { id: string, sequence: number, kind: TransactionKind, amount: number, balanceAfter: number, heldAfter: number, action: Action | null, reference: string | null, actor: string, idempotencyKey: string | null, agentId: string | null, holdId: string | null, reversesTransactionId: string | null, createdAt: string };

export type BudgetUsageFieldsFragment = { agentId: string | null, used: number, remaining: number, resetsAt: string | null, budget: { name: string, appliesTo: BudgetTarget, agentId: string | null, action: Action | null, window: BudgetWindow, limit: number, mode: BudgetMode } };

export type HoldFieldsFragment = { id: string, key: string, state: HoldState, credits: number, capturedCredits: number, uncollectedCredits: number, expiresAt: string, action: Action, agentId: string | null, reference: string | null, createdAt: string, resolvedAt: string | null, reason: string | null };

export type PackFieldsFragment = { code: TopUpPackCode, credits: number, priceCents: number, currency: string };

export type WalletQueryVariables = Exact<{
  workspaceId?: string | null | undefined;
}>;


export type WalletQuery = { wallet: { workspaceId: string, plan: PlanCode, pendingPlan: PlanCode | null, aiPaused: boolean, lastSequence: number, trialEndsAt: string | null, currentPeriod: { start: string, end: string } | null, balance: { total: number, available: number, held: number, allocation: number, purchased: number, bonus: number } } };

export type TransactionsQueryVariables = Exact<{
  workspaceId?: string | null | undefined;
  first?: number | null | undefined;
  after?: string | null | undefined;
  filter?: TransactionFilter | null | undefined;
}>;


export type TransactionsQuery = { wallet: { transactions: { pageInfo: { hasNextPage: boolean, endCursor: string | null }, edges: Array<{ cursor: string, node: { id: string, sequence: number, kind: TransactionKind, amount: number, balanceAfter: number, heldAfter: number, action: Action | null, reference: string | null, actor: string, idempotencyKey: string | null, agentId: string | null, holdId: string | null, reversesTransactionId: string | null, createdAt: string } }> } } };

export type UsageQueryVariables = Exact<{
  workspaceId?: string | null | undefined;
  from: string;
  to: string;
  bucket: UsageBucketSize;
}>;


export type UsageQuery = { wallet: { usage: Array<{ start: string, end: string, total: number, byAction: Array<{ action: Action, credits: number }> }> } };

export type SpendMutationVariables = Exact<{
  input: SpendCreditInput;
}>;


export type SpendMutation = { spendCredit: { outcome: SpendOutcome, cost: number, aiPaused: boolean, nextResetAt: string | null, transaction: { id: string, sequence: number, kind: TransactionKind, amount: number, balanceAfter: number, heldAfter: number, action: Action | null, reference: string | null, actor: string, idempotencyKey: string | null, agentId: string | null, holdId: string | null, reversesTransactionId: string | null, createdAt: string } | null, balance: { total: number, available: number, held: number, allocation: number, purchased: number, bonus: number }, suggestedTopUp: { code: TopUpPackCode, credits: number, priceCents: number, currency: string } | null, budget: { agentId: string | null, used: number, remaining: number, resetsAt: string | null, budget: { name: string, appliesTo: BudgetTarget, agentId: string | null, action: Action | null, window: BudgetWindow, limit: number, mode: BudgetMode } } | null, budgetWarnings: Array<{ agentId: string | null, used: number, remaining: number, resetsAt: string | null, budget: { name: string, appliesTo: BudgetTarget, agentId: string | null, action: Action | null, window: BudgetWindow, limit: number, mode: BudgetMode } }> } };

export type BudgetsQueryVariables = Exact<{
  workspaceId?: string | null | undefined;
  agentId?: string | null | undefined;
}>;


export type BudgetsQuery = { wallet: { budgetUsage: Array<{ agentId: string | null, used: number, remaining: number, resetsAt: string | null, budget: { name: string, appliesTo: BudgetTarget, agentId: string | null, action: Action | null, window: BudgetWindow, limit: number, mode: BudgetMode } }> } };

export type SetBudgetMutationVariables = Exact<{
  input: SetBudgetInput;
}>;


export type SetBudgetMutation = { setBudget: { budget: { name: string, appliesTo: BudgetTarget, agentId: string | null, action: Action | null, window: BudgetWindow, limit: number, mode: BudgetMode } } };

export type RemoveBudgetMutationVariables = Exact<{
  input: RemoveBudgetInput;
}>;


export type RemoveBudgetMutation = { removeBudget: { name: string } };

export type ReserveMutationVariables = Exact<{
  input: ReserveCreditsInput;
}>;


export type ReserveMutation = { reserveCredits: { outcome: ReserveOutcome, aiPaused: boolean, hold: { id: string, key: string, state: HoldState, credits: number, capturedCredits: number, uncollectedCredits: number, expiresAt: string, action: Action, agentId: string | null, reference: string | null, createdAt: string, resolvedAt: string | null, reason: string | null } | null, balance: { total: number, available: number, held: number, allocation: number, purchased: number, bonus: number }, budget: { agentId: string | null, used: number, remaining: number, resetsAt: string | null, budget: { name: string, appliesTo: BudgetTarget, agentId: string | null, action: Action | null, window: BudgetWindow, limit: number, mode: BudgetMode } } | null, suggestedTopUp: { code: TopUpPackCode, credits: number, priceCents: number, currency: string } | null } };

export type CaptureMutationVariables = Exact<{
  input: CaptureHoldInput;
}>;


export type CaptureMutation = { captureHold: { replayed: boolean, hold: { id: string, key: string, state: HoldState, credits: number, capturedCredits: number, uncollectedCredits: number, expiresAt: string, action: Action, agentId: string | null, reference: string | null, createdAt: string, resolvedAt: string | null, reason: string | null }, transaction: { id: string, sequence: number, kind: TransactionKind, amount: number, balanceAfter: number, heldAfter: number, action: Action | null, reference: string | null, actor: string, idempotencyKey: string | null, agentId: string | null, holdId: string | null, reversesTransactionId: string | null, createdAt: string } | null, balance: { total: number, available: number, held: number, allocation: number, purchased: number, bonus: number } } };

export type ReleaseMutationVariables = Exact<{
  input: ReleaseHoldInput;
}>;


export type ReleaseMutation = { releaseHold: { replayed: boolean, hold: { id: string, key: string, state: HoldState, credits: number, capturedCredits: number, uncollectedCredits: number, expiresAt: string, action: Action, agentId: string | null, reference: string | null, createdAt: string, resolvedAt: string | null, reason: string | null }, transaction: { id: string, sequence: number, kind: TransactionKind, amount: number, balanceAfter: number, heldAfter: number, action: Action | null, reference: string | null, actor: string, idempotencyKey: string | null, agentId: string | null, holdId: string | null, reversesTransactionId: string | null, createdAt: string } | null, balance: { total: number, available: number, held: number, allocation: number, purchased: number, bonus: number } } };

export type ExtendMutationVariables = Exact<{
  input: ExtendHoldInput;
}>;


export type ExtendMutation = { extendHold: { replayed: boolean, hold: { id: string, key: string, state: HoldState, credits: number, capturedCredits: number, uncollectedCredits: number, expiresAt: string, action: Action, agentId: string | null, reference: string | null, createdAt: string, resolvedAt: string | null, reason: string | null }, transaction: { id: string, sequence: number, kind: TransactionKind, amount: number, balanceAfter: number, heldAfter: number, action: Action | null, reference: string | null, actor: string, idempotencyKey: string | null, agentId: string | null, holdId: string | null, reversesTransactionId: string | null, createdAt: string } | null, balance: { total: number, available: number, held: number, allocation: number, purchased: number, bonus: number } } };

export type BalanceChangedSubscriptionVariables = Exact<{
  workspaceId?: string | null | undefined;
  afterSequence?: number | null | undefined;
}>;


export type BalanceChangedSubscription = { balanceChanged: { kind: BalanceChangeKind, sequence: number, transactionId: string | null, delta: number, at: string, budgetName: string | null, agentId: string | null, holdId: string | null, balance: { total: number, available: number, held: number, allocation: number, purchased: number, bonus: number } } };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}
export const BalanceFieldsFragmentDoc = new TypedDocumentString(`
    fragment BalanceFields on Balance {
  total
  available
  held
  allocation
  purchased
  bonus
}
    `, {"fragmentName":"BalanceFields"}) as unknown as TypedDocumentString<BalanceFieldsFragment, unknown>;
export const TransactionFieldsFragmentDoc = new TypedDocumentString(`
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
    `, {"fragmentName":"TransactionFields"}) as unknown as TypedDocumentString<TransactionFieldsFragment, unknown>;
export const BudgetUsageFieldsFragmentDoc = new TypedDocumentString(`
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
    `, {"fragmentName":"BudgetUsageFields"}) as unknown as TypedDocumentString<BudgetUsageFieldsFragment, unknown>;
export const HoldFieldsFragmentDoc = new TypedDocumentString(`
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
    `, {"fragmentName":"HoldFields"}) as unknown as TypedDocumentString<HoldFieldsFragment, unknown>;
export const PackFieldsFragmentDoc = new TypedDocumentString(`
    fragment PackFields on TopUpPack {
  code
  credits
  priceCents
  currency
}
    `, {"fragmentName":"PackFields"}) as unknown as TypedDocumentString<PackFieldsFragment, unknown>;
export const WalletDocument = new TypedDocumentString(`
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
    fragment BalanceFields on Balance {
  total
  available
  held
  allocation
  purchased
  bonus
}`, {"hash":"sha256:b43698d95d4a203fa069dda0e553175ae50672ab50b1d0a7e5825ea85d8f13f0"}) as unknown as TypedDocumentString<WalletQuery, WalletQueryVariables>;
export const TransactionsDocument = new TypedDocumentString(`
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
}`, {"hash":"sha256:dda3c4ed680dd0187bf3b2cea6dbfbd24db27f596e668145244bdad08f16610e"}) as unknown as TypedDocumentString<TransactionsQuery, TransactionsQueryVariables>;
export const UsageDocument = new TypedDocumentString(`
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
    `, {"hash":"sha256:1f10436eb4424494af32eb75c9be82dc54541fc4fb1d88982d6b22836ad9f777"}) as unknown as TypedDocumentString<UsageQuery, UsageQueryVariables>;
export const SpendDocument = new TypedDocumentString(`
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
    fragment BalanceFields on Balance {
  total
  available
  held
  allocation
  purchased
  bonus
}
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
fragment PackFields on TopUpPack {
  code
  credits
  priceCents
  currency
}`, {"hash":"sha256:dd45c78a4b3b416d9430bc35afaa1a0c2e8a33592990fbb0f19c7b2930c2df5b"}) as unknown as TypedDocumentString<SpendMutation, SpendMutationVariables>;
export const BudgetsDocument = new TypedDocumentString(`
    query Budgets($workspaceId: ID, $agentId: ID) {
  wallet(workspaceId: $workspaceId) {
    budgetUsage(agentId: $agentId) {
      ...BudgetUsageFields
    }
  }
}
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
}`, {"hash":"sha256:59eb73d289552037f0a900892459e1598990dd97e51ef2a8e267bf0dddf9cceb"}) as unknown as TypedDocumentString<BudgetsQuery, BudgetsQueryVariables>;
export const SetBudgetDocument = new TypedDocumentString(`
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
    `, {"hash":"sha256:b10ae381c4d11388242fabdc607854aca2f47ad56f6a0649a02cf4c8019259cd"}) as unknown as TypedDocumentString<SetBudgetMutation, SetBudgetMutationVariables>;
export const RemoveBudgetDocument = new TypedDocumentString(`
    mutation RemoveBudget($input: RemoveBudgetInput!) {
  removeBudget(input: $input) {
    name
  }
}
    `, {"hash":"sha256:9f314dc654ca40232fdcd0e0a70e61156766b6a293887cf0fe62086a7e76ea42"}) as unknown as TypedDocumentString<RemoveBudgetMutation, RemoveBudgetMutationVariables>;
export const ReserveDocument = new TypedDocumentString(`
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
    fragment BalanceFields on Balance {
  total
  available
  held
  allocation
  purchased
  bonus
}
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
fragment PackFields on TopUpPack {
  code
  credits
  priceCents
  currency
}`, {"hash":"sha256:e6a35f462c26bbfaeb30f3ca4a5c40b28818dea73c4977c3da315808f0008eda"}) as unknown as TypedDocumentString<ReserveMutation, ReserveMutationVariables>;
export const CaptureDocument = new TypedDocumentString(`
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
    fragment BalanceFields on Balance {
  total
  available
  held
  allocation
  purchased
  bonus
}
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
}`, {"hash":"sha256:9d5c9b1d5089c486936916ea7e6f9176bb3addaefb799447b9828ffeab1f5fda"}) as unknown as TypedDocumentString<CaptureMutation, CaptureMutationVariables>;
export const ReleaseDocument = new TypedDocumentString(`
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
    fragment BalanceFields on Balance {
  total
  available
  held
  allocation
  purchased
  bonus
}
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
}`, {"hash":"sha256:cff7184464145ea646eaabc4386577f74d852bd731aae3833395adbed6eef613"}) as unknown as TypedDocumentString<ReleaseMutation, ReleaseMutationVariables>;
export const ExtendDocument = new TypedDocumentString(`
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
    fragment BalanceFields on Balance {
  total
  available
  held
  allocation
  purchased
  bonus
}
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
}`, {"hash":"sha256:4400ef2832daf001b97b2fdc667379443c841b34d235e6e4dd65c62135dbafe3"}) as unknown as TypedDocumentString<ExtendMutation, ExtendMutationVariables>;
export const BalanceChangedDocument = new TypedDocumentString(`
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
    fragment BalanceFields on Balance {
  total
  available
  held
  allocation
  purchased
  bonus
}`, {"hash":"sha256:a32bce67b63c7e3a64582ec6b45a7c00a16bd67d96034b5ac75b96151096a74f"}) as unknown as TypedDocumentString<BalanceChangedSubscription, BalanceChangedSubscriptionVariables>;