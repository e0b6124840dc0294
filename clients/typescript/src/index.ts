export { createCreditsClient, newKey } from "./client.js";
export type {
  Balance,
  BudgetUsage,
  CreditsClient,
  CreditsClientOptions,
  Hold,
  HoldResult,
  ReserveInput,
  ReserveResult,
  SpendInput,
  SpendResult,
  Transaction,
  TransactionsPage,
  UsageBucket,
  Wallet,
} from "./client.js";
export { CreditsError, isCreditsError } from "./errors.js";
export type { CreditsErrorCode, GraphQLErrorShape } from "./errors.js";
export { watchBalance } from "./live.js";
export type { BalanceEvent, BalanceGap, BalanceWatch, WatchOptions, WatchStatus, WebSocketConstructor } from "./live.js";
export type { TokenSource } from "./token.js";
export * as operations from "./gql/graphql.js";
