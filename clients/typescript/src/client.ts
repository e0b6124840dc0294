// The calls a frontend and an AI worker make, typed from schema.graphql.
import { CreditsError, type GraphQLErrorShape } from "./errors.js";
import type { TypedDocumentString } from "./gql/graphql.js";
import * as ops from "./gql/graphql.js";
import { type BalanceEvent, type BalanceWatch, type WatchOptions, watchBalance } from "./live.js";
import { backoffDelay, resolveToken, sleep, type TokenSource } from "./token.js";

export interface CreditsClientOptions {
  /** The GraphQL endpoint: http(s)://host:port/graphql. */
  url: string;
  /** A token, or a function giving the current one (called before every
   * request and connection, so a refreshed token is used). */
  token: TokenSource;
  /** Send documents by their trusted-document id (graphql-codegen's
   * persisted documents, `documentId`) instead of their text: needed where
   * the service runs TRUSTED_DOCUMENTS=enforce, and skips its parsing. */
  trustedDocuments?: boolean;
  /** Retries of a call that failed on the network or with 502/503/504
   * (the same idempotency key each time): default 3. */
  retries?: number;
  /** Waits between retries: doubling from `initialMs` up to `maxMs`. */
  backoff?: { initialMs?: number; maxMs?: number };
  fetch?: typeof fetch;
  webSocketImpl?: WatchOptions["webSocketImpl"];
}

export type Wallet = NonNullable<ops.WalletQuery["wallet"]>;
export type Transaction = ops.TransactionFieldsFragment;
export type TransactionsPage = ops.TransactionsQuery["wallet"]["transactions"];
export type UsageBucket = ops.UsageQuery["wallet"]["usage"][number];
export type SpendResult = ops.SpendMutation["spendCredit"];
export type BudgetUsage = ops.BudgetUsageFieldsFragment;
export type ReserveResult = ops.ReserveMutation["reserveCredits"];
export type HoldResult = ops.CaptureMutation["captureHold"];
export type Hold = ops.HoldFieldsFragment;
export type Balance = ops.BalanceFieldsFragment;

/** `spendCredit`'s input; the idempotency key is generated when missing. */
export type SpendInput = Omit<ops.SpendCreditInput, "idempotencyKey"> & { idempotencyKey?: string };
/** `reserveCredits`' input; the hold key is generated when missing. */
export type ReserveInput = Omit<ops.ReserveCreditsInput, "holdKey"> & { holdKey?: string };

const RETRIED_STATUSES = new Set([502, 503, 504]);

/** A random key (crypto.randomUUID where the page is a secure context). */
export function newKey(): string {
  const crypto = globalThis.crypto;
  if (typeof crypto?.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export interface CreditsClient {
  /** Any of the kit's typed documents. */
  request<R, V>(document: TypedDocumentString<R, V>, variables: V): Promise<R>;
  wallet(workspaceId?: string | null): Promise<Wallet>;
  /** One page, newest first; pass the previous page's `endCursor` as `after`. */
  transactions(options?: {
    workspaceId?: string | null;
    first?: number;
    after?: string | null;
    filter?: ops.TransactionFilter;
  }): Promise<TransactionsPage>;
  /** Every transaction, newest first, page by page. */
  allTransactions(options?: { workspaceId?: string | null; pageSize?: number; filter?: ops.TransactionFilter }): AsyncGenerator<Transaction>;
  usage(options: { workspaceId?: string | null; from: string | Date; to: string | Date; bucket: ops.UsageBucketSize }): Promise<UsageBucket[]>;
  spend(input: SpendInput): Promise<SpendResult & { idempotencyKey: string }>;
  budgets(options?: { workspaceId?: string | null; agentId?: string | null }): Promise<BudgetUsage[]>;
  setBudget(input: ops.SetBudgetInput): Promise<ops.SetBudgetMutation["setBudget"]["budget"]>;
  removeBudget(input: ops.RemoveBudgetInput): Promise<void>;
  reserve(input: ReserveInput): Promise<ReserveResult & { holdKey: string }>;
  capture(holdId: string, credits?: number): Promise<HoldResult>;
  release(holdId: string, reason: string): Promise<HoldResult>;
  extend(holdId: string, ttlSeconds?: number): Promise<HoldResult>;
  /** The live balance (see `watchBalance`). */
  watchBalance(
    workspaceId: string | null,
    onChange: (event: BalanceEvent) => void,
    options?: Omit<WatchOptions, "url" | "token" | "webSocketImpl" | "trustedDocuments">,
  ): BalanceWatch;
}

export function createCreditsClient(options: CreditsClientOptions): CreditsClient {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const retries = options.retries ?? 3;
  const initialMs = options.backoff?.initialMs ?? 200;
  const maxMs = options.backoff?.maxMs ?? 5_000;

  async function once<R, V>(document: TypedDocumentString<R, V>, variables: V): Promise<R> {
    const body: Record<string, unknown> = { variables };
    const id = (document as { __meta__?: { hash?: string } }).__meta__?.hash;
    if (options.trustedDocuments && id) body.documentId = id;
    else body.query = document.toString();
    const token = await resolveToken(options.token);
    let response: Response;
    try {
      response = await doFetch(options.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/graphql-response+json, application/json",
          authorization: `Bearer ${token}`,
        },
        body: JSON.stringify(body),
      });
    } catch (error) {
      throw new CreditsError("NETWORK_ERROR", `the service could not be reached: ${String(error)}`);
    }
    let answer: { data?: R | null; errors?: GraphQLErrorShape[] };
    try {
      answer = await response.json();
    } catch {
      throw new CreditsError("NETWORK_ERROR", `the service answered ${response.status} without GraphQL`, [], response.status);
    }
    if (answer.errors?.length) throw CreditsError.fromErrors(answer.errors, response.status);
    if (!answer.data) throw new CreditsError("INTERNAL_SERVER_ERROR", "an answer without data", [], response.status);
    return answer.data;
  }

  /** A call retried on the network's failures: every mutation here is
   * idempotent (a key, a hold id), so a retry never charges twice. */
  async function request<R, V>(document: TypedDocumentString<R, V>, variables: V): Promise<R> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await once(document, variables);
      } catch (error) {
        const transient =
          error instanceof CreditsError &&
          (error.code === "NETWORK_ERROR" || (error.status !== undefined && RETRIED_STATUSES.has(error.status)));
        if (!transient || attempt >= retries) throw error;
        await sleep(backoffDelay(attempt, initialMs, maxMs));
      }
    }
  }

  const iso = (value: string | Date) => (typeof value === "string" ? value : value.toISOString());

  const client: CreditsClient = {
    request,
    async wallet(workspaceId = null) {
      const data = await request(ops.WalletDocument, { workspaceId });
      if (!data.wallet) throw new CreditsError("NOT_FOUND", "no such wallet");
      return data.wallet;
    },
    async transactions({ workspaceId = null, first = 50, after = null, filter } = {}) {
      const data = await request(ops.TransactionsDocument, { workspaceId, first, after, filter });
      return data.wallet.transactions;
    },
    async *allTransactions({ workspaceId = null, pageSize = 100, filter } = {}) {
      let after: string | null = null;
      for (;;) {
        const page: TransactionsPage = await client.transactions({ workspaceId, first: pageSize, after, filter });
        for (const edge of page.edges) yield edge.node;
        if (!page.pageInfo.hasNextPage || !page.pageInfo.endCursor) return;
        after = page.pageInfo.endCursor;
      }
    },
    async usage({ workspaceId = null, from, to, bucket }) {
      const data = await request(ops.UsageDocument, { workspaceId, from: iso(from), to: iso(to), bucket });
      return data.wallet.usage;
    },
    async spend(input) {
      const idempotencyKey = input.idempotencyKey ?? newKey();
      const data = await request(ops.SpendDocument, { input: { ...input, idempotencyKey } });
      return { ...data.spendCredit, idempotencyKey };
    },
    async budgets({ workspaceId = null, agentId = null } = {}) {
      const data = await request(ops.BudgetsDocument, { workspaceId, agentId });
      return data.wallet.budgetUsage;
    },
    async setBudget(input) {
      const data = await request(ops.SetBudgetDocument, { input });
      return data.setBudget.budget;
    },
    async removeBudget(input) {
      await request(ops.RemoveBudgetDocument, { input });
    },
    async reserve(input) {
      const holdKey = input.holdKey ?? newKey();
      const data = await request(ops.ReserveDocument, { input: { ...input, holdKey } });
      return { ...data.reserveCredits, holdKey };
    },
    async capture(holdId, credits) {
      return (await request(ops.CaptureDocument, { input: { holdId, credits } })).captureHold;
    },
    async release(holdId, reason) {
      return (await request(ops.ReleaseDocument, { input: { holdId, reason } })).releaseHold;
    },
    async extend(holdId, ttlSeconds) {
      return (await request(ops.ExtendDocument, { input: { holdId, ttlSeconds } })).extendHold;
    },
    watchBalance(workspaceId, onChange, watch = {}) {
      return watchBalance(workspaceId, onChange, {
        ...watch,
        url: options.url,
        token: options.token,
        trustedDocuments: options.trustedDocuments,
        webSocketImpl: options.webSocketImpl,
      });
    },
  };
  return client;
}
