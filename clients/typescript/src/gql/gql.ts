/* eslint-disable */
import * as types from './graphql.js';



/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  fragment BalanceFields on Balance {\n    total\n    available\n    held\n    allocation\n    purchased\n    bonus\n  }\n": typeof types.BalanceFieldsFragmentDoc,
    "\n  fragment TransactionFields on Transaction {\n    id\n    sequence\n    kind\n    amount\n    balanceAfter\n    heldAfter\n    action\n    reference\n    actor\n    idempotencyKey\n    agentId\n    holdId\n    reversesTransactionId\n    createdAt\n  }\n": typeof types.TransactionFieldsFragmentDoc,
    "\n  fragment BudgetUsageFields on BudgetUsage {\n    budget {\n      name\n      appliesTo\n      agentId\n      action\n      window\n      limit\n      mode\n    }\n    agentId\n    used\n    remaining\n    resetsAt\n  }\n": typeof types.BudgetUsageFieldsFragmentDoc,
    "\n  fragment HoldFields on Hold {\n    id\n    key\n    state\n    credits\n    capturedCredits\n    uncollectedCredits\n    expiresAt\n    action\n    agentId\n    reference\n    createdAt\n    resolvedAt\n    reason\n  }\n": typeof types.HoldFieldsFragmentDoc,
    "\n  fragment PackFields on TopUpPack {\n    code\n    credits\n    priceCents\n    currency\n  }\n": typeof types.PackFieldsFragmentDoc,
    "\n  query Wallet($workspaceId: ID) {\n    wallet(workspaceId: $workspaceId) {\n      workspaceId\n      plan\n      pendingPlan\n      aiPaused\n      lastSequence\n      trialEndsAt\n      currentPeriod {\n        start\n        end\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n": typeof types.WalletDocument,
    "\n  query Transactions($workspaceId: ID, $first: Int, $after: String, $filter: TransactionFilter) {\n    wallet(workspaceId: $workspaceId) {\n      transactions(first: $first, after: $after, filter: $filter) {\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        edges {\n          cursor\n          node {\n            ...TransactionFields\n          }\n        }\n      }\n    }\n  }\n": typeof types.TransactionsDocument,
    "\n  query Usage($workspaceId: ID, $from: DateTime!, $to: DateTime!, $bucket: UsageBucketSize!) {\n    wallet(workspaceId: $workspaceId) {\n      usage(from: $from, to: $to, bucket: $bucket) {\n        start\n        end\n        total\n        byAction {\n          action\n          credits\n        }\n      }\n    }\n  }\n": typeof types.UsageDocument,
    "\n  mutation Spend($input: SpendCreditInput!) {\n    spendCredit(input: $input) {\n      outcome\n      cost\n      aiPaused\n      nextResetAt\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n      suggestedTopUp {\n        ...PackFields\n      }\n      budget {\n        ...BudgetUsageFields\n      }\n      budgetWarnings {\n        ...BudgetUsageFields\n      }\n    }\n  }\n": typeof types.SpendDocument,
    "\n  query Budgets($workspaceId: ID, $agentId: ID) {\n    wallet(workspaceId: $workspaceId) {\n      budgetUsage(agentId: $agentId) {\n        ...BudgetUsageFields\n      }\n    }\n  }\n": typeof types.BudgetsDocument,
    "\n  mutation SetBudget($input: SetBudgetInput!) {\n    setBudget(input: $input) {\n      budget {\n        name\n        appliesTo\n        agentId\n        action\n        window\n        limit\n        mode\n      }\n    }\n  }\n": typeof types.SetBudgetDocument,
    "\n  mutation RemoveBudget($input: RemoveBudgetInput!) {\n    removeBudget(input: $input) {\n      name\n    }\n  }\n": typeof types.RemoveBudgetDocument,
    "\n  mutation Reserve($input: ReserveCreditsInput!) {\n    reserveCredits(input: $input) {\n      outcome\n      aiPaused\n      hold {\n        ...HoldFields\n      }\n      balance {\n        ...BalanceFields\n      }\n      budget {\n        ...BudgetUsageFields\n      }\n      suggestedTopUp {\n        ...PackFields\n      }\n    }\n  }\n": typeof types.ReserveDocument,
    "\n  mutation Capture($input: CaptureHoldInput!) {\n    captureHold(input: $input) {\n      replayed\n      hold {\n        ...HoldFields\n      }\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n": typeof types.CaptureDocument,
    "\n  mutation Release($input: ReleaseHoldInput!) {\n    releaseHold(input: $input) {\n      replayed\n      hold {\n        ...HoldFields\n      }\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n": typeof types.ReleaseDocument,
    "\n  mutation Extend($input: ExtendHoldInput!) {\n    extendHold(input: $input) {\n      replayed\n      hold {\n        ...HoldFields\n      }\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n": typeof types.ExtendDocument,
    "\n  subscription BalanceChanged($workspaceId: ID, $afterSequence: Int) {\n    balanceChanged(workspaceId: $workspaceId, afterSequence: $afterSequence) {\n      kind\n      sequence\n      transactionId\n      delta\n      at\n      budgetName\n      agentId\n      holdId\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n": typeof types.BalanceChangedDocument,
};
const documents: Documents = {
    "\n  fragment BalanceFields on Balance {\n    total\n    available\n    held\n    allocation\n    purchased\n    bonus\n  }\n": types.BalanceFieldsFragmentDoc,
    "\n  fragment TransactionFields on Transaction {\n    id\n    sequence\n    kind\n    amount\n    balanceAfter\n    heldAfter\n    action\n    reference\n    actor\n    idempotencyKey\n    agentId\n    holdId\n    reversesTransactionId\n    createdAt\n  }\n": types.TransactionFieldsFragmentDoc,
    "\n  fragment BudgetUsageFields on BudgetUsage {\n    budget {\n      name\n      appliesTo\n      agentId\n      action\n      window\n      limit\n      mode\n    }\n    agentId\n    used\n    remaining\n    resetsAt\n  }\n": types.BudgetUsageFieldsFragmentDoc,
    "\n  fragment HoldFields on Hold {\n    id\n    key\n    state\n    credits\n    capturedCredits\n    uncollectedCredits\n    expiresAt\n    action\n    agentId\n    reference\n    createdAt\n    resolvedAt\n    reason\n  }\n": types.HoldFieldsFragmentDoc,
    "\n  fragment PackFields on TopUpPack {\n    code\n    credits\n    priceCents\n    currency\n  }\n": types.PackFieldsFragmentDoc,
    "\n  query Wallet($workspaceId: ID) {\n    wallet(workspaceId: $workspaceId) {\n      workspaceId\n      plan\n      pendingPlan\n      aiPaused\n      lastSequence\n      trialEndsAt\n      currentPeriod {\n        start\n        end\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n": types.WalletDocument,
    "\n  query Transactions($workspaceId: ID, $first: Int, $after: String, $filter: TransactionFilter) {\n    wallet(workspaceId: $workspaceId) {\n      transactions(first: $first, after: $after, filter: $filter) {\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        edges {\n          cursor\n          node {\n            ...TransactionFields\n          }\n        }\n      }\n    }\n  }\n": types.TransactionsDocument,
    "\n  query Usage($workspaceId: ID, $from: DateTime!, $to: DateTime!, $bucket: UsageBucketSize!) {\n    wallet(workspaceId: $workspaceId) {\n      usage(from: $from, to: $to, bucket: $bucket) {\n        start\n        end\n        total\n        byAction {\n          action\n          credits\n        }\n      }\n    }\n  }\n": types.UsageDocument,
    "\n  mutation Spend($input: SpendCreditInput!) {\n    spendCredit(input: $input) {\n      outcome\n      cost\n      aiPaused\n      nextResetAt\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n      suggestedTopUp {\n        ...PackFields\n      }\n      budget {\n        ...BudgetUsageFields\n      }\n      budgetWarnings {\n        ...BudgetUsageFields\n      }\n    }\n  }\n": types.SpendDocument,
    "\n  query Budgets($workspaceId: ID, $agentId: ID) {\n    wallet(workspaceId: $workspaceId) {\n      budgetUsage(agentId: $agentId) {\n        ...BudgetUsageFields\n      }\n    }\n  }\n": types.BudgetsDocument,
    "\n  mutation SetBudget($input: SetBudgetInput!) {\n    setBudget(input: $input) {\n      budget {\n        name\n        appliesTo\n        agentId\n        action\n        window\n        limit\n        mode\n      }\n    }\n  }\n": types.SetBudgetDocument,
    "\n  mutation RemoveBudget($input: RemoveBudgetInput!) {\n    removeBudget(input: $input) {\n      name\n    }\n  }\n": types.RemoveBudgetDocument,
    "\n  mutation Reserve($input: ReserveCreditsInput!) {\n    reserveCredits(input: $input) {\n      outcome\n      aiPaused\n      hold {\n        ...HoldFields\n      }\n      balance {\n        ...BalanceFields\n      }\n      budget {\n        ...BudgetUsageFields\n      }\n      suggestedTopUp {\n        ...PackFields\n      }\n    }\n  }\n": types.ReserveDocument,
    "\n  mutation Capture($input: CaptureHoldInput!) {\n    captureHold(input: $input) {\n      replayed\n      hold {\n        ...HoldFields\n      }\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n": types.CaptureDocument,
    "\n  mutation Release($input: ReleaseHoldInput!) {\n    releaseHold(input: $input) {\n      replayed\n      hold {\n        ...HoldFields\n      }\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n": types.ReleaseDocument,
    "\n  mutation Extend($input: ExtendHoldInput!) {\n    extendHold(input: $input) {\n      replayed\n      hold {\n        ...HoldFields\n      }\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n": types.ExtendDocument,
    "\n  subscription BalanceChanged($workspaceId: ID, $afterSequence: Int) {\n    balanceChanged(workspaceId: $workspaceId, afterSequence: $afterSequence) {\n      kind\n      sequence\n      transactionId\n      delta\n      at\n      budgetName\n      agentId\n      holdId\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n": types.BalanceChangedDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment BalanceFields on Balance {\n    total\n    available\n    held\n    allocation\n    purchased\n    bonus\n  }\n"): typeof import('./graphql.js').BalanceFieldsFragmentDoc;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment TransactionFields on Transaction {\n    id\n    sequence\n    kind\n    amount\n    balanceAfter\n    heldAfter\n    action\n    reference\n    actor\n    idempotencyKey\n    agentId\n    holdId\n    reversesTransactionId\n    createdAt\n  }\n"): typeof import('./graphql.js').TransactionFieldsFragmentDoc;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment BudgetUsageFields on BudgetUsage {\n    budget {\n      name\n      appliesTo\n      agentId\n      action\n      window\n      limit\n      mode\n    }\n    agentId\n    used\n    remaining\n    resetsAt\n  }\n"): typeof import('./graphql.js').BudgetUsageFieldsFragmentDoc;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment HoldFields on Hold {\n    id\n    key\n    state\n    credits\n    capturedCredits\n    uncollectedCredits\n    expiresAt\n    action\n    agentId\n    reference\n    createdAt\n    resolvedAt\n    reason\n  }\n"): typeof import('./graphql.js').HoldFieldsFragmentDoc;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment PackFields on TopUpPack {\n    code\n    credits\n    priceCents\n    currency\n  }\n"): typeof import('./graphql.js').PackFieldsFragmentDoc;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Wallet($workspaceId: ID) {\n    wallet(workspaceId: $workspaceId) {\n      workspaceId\n      plan\n      pendingPlan\n      aiPaused\n      lastSequence\n      trialEndsAt\n      currentPeriod {\n        start\n        end\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n"): typeof import('./graphql.js').WalletDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Transactions($workspaceId: ID, $first: Int, $after: String, $filter: TransactionFilter) {\n    wallet(workspaceId: $workspaceId) {\n      transactions(first: $first, after: $after, filter: $filter) {\n        pageInfo {\n          hasNextPage\n          endCursor\n        }\n        edges {\n          cursor\n          node {\n            ...TransactionFields\n          }\n        }\n      }\n    }\n  }\n"): typeof import('./graphql.js').TransactionsDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Usage($workspaceId: ID, $from: DateTime!, $to: DateTime!, $bucket: UsageBucketSize!) {\n    wallet(workspaceId: $workspaceId) {\n      usage(from: $from, to: $to, bucket: $bucket) {\n        start\n        end\n        total\n        byAction {\n          action\n          credits\n        }\n      }\n    }\n  }\n"): typeof import('./graphql.js').UsageDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Spend($input: SpendCreditInput!) {\n    spendCredit(input: $input) {\n      outcome\n      cost\n      aiPaused\n      nextResetAt\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n      suggestedTopUp {\n        ...PackFields\n      }\n      budget {\n        ...BudgetUsageFields\n      }\n      budgetWarnings {\n        ...BudgetUsageFields\n      }\n    }\n  }\n"): typeof import('./graphql.js').SpendDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Budgets($workspaceId: ID, $agentId: ID) {\n    wallet(workspaceId: $workspaceId) {\n      budgetUsage(agentId: $agentId) {\n        ...BudgetUsageFields\n      }\n    }\n  }\n"): typeof import('./graphql.js').BudgetsDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetBudget($input: SetBudgetInput!) {\n    setBudget(input: $input) {\n      budget {\n        name\n        appliesTo\n        agentId\n        action\n        window\n        limit\n        mode\n      }\n    }\n  }\n"): typeof import('./graphql.js').SetBudgetDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RemoveBudget($input: RemoveBudgetInput!) {\n    removeBudget(input: $input) {\n      name\n    }\n  }\n"): typeof import('./graphql.js').RemoveBudgetDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Reserve($input: ReserveCreditsInput!) {\n    reserveCredits(input: $input) {\n      outcome\n      aiPaused\n      hold {\n        ...HoldFields\n      }\n      balance {\n        ...BalanceFields\n      }\n      budget {\n        ...BudgetUsageFields\n      }\n      suggestedTopUp {\n        ...PackFields\n      }\n    }\n  }\n"): typeof import('./graphql.js').ReserveDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Capture($input: CaptureHoldInput!) {\n    captureHold(input: $input) {\n      replayed\n      hold {\n        ...HoldFields\n      }\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n"): typeof import('./graphql.js').CaptureDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Release($input: ReleaseHoldInput!) {\n    releaseHold(input: $input) {\n      replayed\n      hold {\n        ...HoldFields\n      }\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n"): typeof import('./graphql.js').ReleaseDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Extend($input: ExtendHoldInput!) {\n    extendHold(input: $input) {\n      replayed\n      hold {\n        ...HoldFields\n      }\n      transaction {\n        ...TransactionFields\n      }\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n"): typeof import('./graphql.js').ExtendDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription BalanceChanged($workspaceId: ID, $afterSequence: Int) {\n    balanceChanged(workspaceId: $workspaceId, afterSequence: $afterSequence) {\n      kind\n      sequence\n      transactionId\n      delta\n      at\n      budgetName\n      agentId\n      holdId\n      balance {\n        ...BalanceFields\n      }\n    }\n  }\n"): typeof import('./graphql.js').BalanceChangedDocument;


export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}
