// Built from clients/typescript/src/live.ts (npm run build); do not edit.
var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// src/errors.ts
var CreditsError = class _CreditsError extends Error {
  constructor(code, message, errors = [], status) {
    super(message);
    __publicField(this, "code");
    /** Every error of the answer, as sent. */
    __publicField(this, "errors");
    /** The HTTP status, when an answer came back. */
    __publicField(this, "status");
    this.name = "CreditsError";
    this.code = code;
    this.errors = errors;
    this.status = status;
  }
  /** From a GraphQL answer's `errors`. */
  static fromErrors(errors, status) {
    const first = errors[0] ?? { message: "unknown error" };
    const code = typeof first.extensions?.code === "string" ? first.extensions.code : "INTERNAL_SERVER_ERROR";
    return new _CreditsError(code, errors.map((error) => error.message).join("; "), errors, status);
  }
};

// src/gql/graphql.ts
var TypedDocumentString = class extends String {
  constructor(value, __meta__) {
    super(value);
    __publicField(this, "__apiType");
    __publicField(this, "value");
    __publicField(this, "__meta__");
    this.value = value;
    this.__meta__ = __meta__;
  }
  toString() {
    return this.value;
  }
};
var BalanceFieldsFragmentDoc = new TypedDocumentString(`
    fragment BalanceFields on Balance {
  total
  available
  held
  allocation
  purchased
  bonus
}
    `, { "fragmentName": "BalanceFields" });
var TransactionFieldsFragmentDoc = new TypedDocumentString(`
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
    `, { "fragmentName": "TransactionFields" });
var BudgetUsageFieldsFragmentDoc = new TypedDocumentString(`
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
    `, { "fragmentName": "BudgetUsageFields" });
var HoldFieldsFragmentDoc = new TypedDocumentString(`
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
    `, { "fragmentName": "HoldFields" });
var PackFieldsFragmentDoc = new TypedDocumentString(`
    fragment PackFields on TopUpPack {
  code
  credits
  priceCents
  currency
}
    `, { "fragmentName": "PackFields" });
var WalletDocument = new TypedDocumentString(`
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
}`, { "hash": "sha256:b43698d95d4a203fa069dda0e553175ae50672ab50b1d0a7e5825ea85d8f13f0" });
var TransactionsDocument = new TypedDocumentString(`
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
}`, { "hash": "sha256:dda3c4ed680dd0187bf3b2cea6dbfbd24db27f596e668145244bdad08f16610e" });
var UsageDocument = new TypedDocumentString(`
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
    `, { "hash": "sha256:1f10436eb4424494af32eb75c9be82dc54541fc4fb1d88982d6b22836ad9f777" });
var SpendDocument = new TypedDocumentString(`
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
}`, { "hash": "sha256:dd45c78a4b3b416d9430bc35afaa1a0c2e8a33592990fbb0f19c7b2930c2df5b" });
var BudgetsDocument = new TypedDocumentString(`
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
}`, { "hash": "sha256:59eb73d289552037f0a900892459e1598990dd97e51ef2a8e267bf0dddf9cceb" });
var SetBudgetDocument = new TypedDocumentString(`
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
    `, { "hash": "sha256:b10ae381c4d11388242fabdc607854aca2f47ad56f6a0649a02cf4c8019259cd" });
var RemoveBudgetDocument = new TypedDocumentString(`
    mutation RemoveBudget($input: RemoveBudgetInput!) {
  removeBudget(input: $input) {
    name
  }
}
    `, { "hash": "sha256:9f314dc654ca40232fdcd0e0a70e61156766b6a293887cf0fe62086a7e76ea42" });
var ReserveDocument = new TypedDocumentString(`
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
}`, { "hash": "sha256:e6a35f462c26bbfaeb30f3ca4a5c40b28818dea73c4977c3da315808f0008eda" });
var CaptureDocument = new TypedDocumentString(`
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
}`, { "hash": "sha256:9d5c9b1d5089c486936916ea7e6f9176bb3addaefb799447b9828ffeab1f5fda" });
var ReleaseDocument = new TypedDocumentString(`
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
}`, { "hash": "sha256:cff7184464145ea646eaabc4386577f74d852bd731aae3833395adbed6eef613" });
var ExtendDocument = new TypedDocumentString(`
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
}`, { "hash": "sha256:4400ef2832daf001b97b2fdc667379443c841b34d235e6e4dd65c62135dbafe3" });
var BalanceChangedDocument = new TypedDocumentString(`
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
}`, { "hash": "sha256:a32bce67b63c7e3a64582ec6b45a7c00a16bd67d96034b5ac75b96151096a74f" });

// src/token.ts
async function resolveToken(token) {
  return typeof token === "function" ? await token() : token;
}
function backoffDelay(attempt, initialMs, maxMs) {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

// src/live.ts
var LEDGER_ALERTS = /* @__PURE__ */ new Set(["LOW_BALANCE", "BUDGET_EXCEEDED"]);
function socketUrl(url) {
  if (url.startsWith("ws://") || url.startsWith("wss://")) return url;
  if (url.startsWith("https://")) return "wss://" + url.slice("https://".length);
  if (url.startsWith("http://")) return "ws://" + url.slice("http://".length);
  throw new CreditsError("BAD_USER_INPUT", `not an http(s) or ws(s) URL: ${url}`);
}
function watchBalance(workspaceId, onChange, options) {
  const found = options.webSocketImpl ?? globalThis.WebSocket;
  if (!found) throw new CreditsError("BAD_USER_INPUT", "no WebSocket: pass webSocketImpl");
  const Socket = found;
  const url = socketUrl(options.url);
  const initialMs = options.backoff?.initialMs ?? 250;
  const maxMs = options.backoff?.maxMs ?? 1e4;
  const silenceMs = options.silenceMs ?? 75e3;
  let last = options.afterSequence ?? null;
  let fresh = false;
  let closed = false;
  let attempt = 0;
  let socket = null;
  let timer = null;
  let watchdog = null;
  let operation = 0;
  let settleClose = null;
  const closedPromise = new Promise((resolve) => {
    settleClose = resolve;
  });
  const status = (value, detail) => options.onStatus?.(value, detail);
  const stop = (error) => {
    if (closed) return;
    closed = true;
    if (timer) clearTimeout(timer);
    if (watchdog) clearTimeout(watchdog);
    if (error) options.onError?.(error);
    const open2 = socket;
    socket = null;
    if (open2 && open2.readyState !== open2.CLOSED) {
      open2.addEventListener("close", () => finish());
      open2.close(1e3, "closed by the client");
    } else {
      finish();
    }
  };
  const finish = () => {
    status("closed");
    settleClose?.();
  };
  const retry = (detail) => {
    if (closed) return;
    socket = null;
    status("reconnecting", detail);
    const wait = backoffDelay(attempt, initialMs, maxMs);
    attempt += 1;
    timer = setTimeout(connect, wait);
  };
  const deliver = (event) => {
    if (LEDGER_ALERTS.has(event.kind)) {
      options.onAlert?.(event);
      return "ok";
    }
    if (event.kind === "SNAPSHOT") {
      if (last !== null && event.sequence === last) {
        fresh = false;
        return "ok";
      }
      if (last !== null) {
        options.onGap?.({ after: last, snapshot: event.sequence });
      }
      fresh = false;
      last = event.sequence;
      onChange(event);
      return "ok";
    }
    if (last !== null && event.sequence <= last) return "ok";
    if (last !== null && event.sequence !== last + 1) {
      fresh = true;
      return "resubscribe";
    }
    last = event.sequence;
    onChange(event);
    return "ok";
  };
  const subscribe = (open2) => {
    operation += 1;
    const variables = { workspaceId };
    if (last !== null && !fresh) variables.afterSequence = last;
    const payload = { variables, operationName: "BalanceChanged" };
    if (options.trustedDocuments) payload.documentId = BalanceChangedDocument.__meta__?.hash;
    else payload.query = BalanceChangedDocument.toString();
    open2.send(JSON.stringify({ id: String(operation), type: "subscribe", payload }));
  };
  const refused = (open2, errors) => {
    const error = CreditsError.fromErrors(errors);
    if (error.code === "UNAUTHENTICATED" && typeof options.token === "function") {
      open2.close(1e3, "token refreshed");
      return;
    }
    if (error.code === "BAD_USER_INPUT" && last !== null && !fresh && /afterSequence/.test(error.message)) {
      fresh = true;
      subscribe(open2);
      return;
    }
    if (error.code === "SERVICE_UNAVAILABLE" || error.code === "INTERNAL_SERVER_ERROR") {
      open2.close(1e3, error.code);
      return;
    }
    stop(error);
  };
  function connect() {
    timer = null;
    if (closed) return;
    status(attempt === 0 && last === null ? "connecting" : "reconnecting");
    resolveToken(options.token).then(
      (token) => open(token),
      (error) => retry(`token: ${String(error)}`)
    );
  }
  function open(token) {
    if (closed) return;
    let ws;
    try {
      ws = new Socket(url, "graphql-transport-ws");
    } catch (error) {
      retry(String(error));
      return;
    }
    socket = ws;
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ type: "connection_init", payload: { token } }));
    });
    ws.addEventListener("message", (message) => {
      if (socket !== ws) return;
      heard(ws);
      let msg;
      try {
        msg = JSON.parse(String(message.data));
      } catch {
        ws.close(4400, "not JSON");
        return;
      }
      switch (msg.type) {
        case "connection_ack":
          attempt = 0;
          subscribe(ws);
          status("live");
          break;
        case "ping":
          ws.send(JSON.stringify({ type: "pong" }));
          break;
        case "next": {
          if (msg.id !== String(operation)) break;
          const payload = msg.payload;
          if (payload.errors?.length) {
            refused(ws, payload.errors);
          } else if (payload.data?.balanceChanged) {
            if (deliver(payload.data.balanceChanged) === "resubscribe") {
              ws.send(JSON.stringify({ id: String(operation), type: "complete" }));
              subscribe(ws);
            }
          }
          break;
        }
        case "error":
          if (msg.id === String(operation)) refused(ws, msg.payload);
          break;
        case "complete":
          if (msg.id === String(operation)) ws.close(1e3, "stream ended");
          break;
      }
    });
    ws.addEventListener("close", (event) => lost(ws, event.code, event.reason));
    ws.addEventListener("error", () => lost(ws, 1006, "connection failed"));
    heard(ws);
  }
  function heard(ws) {
    if (watchdog) clearTimeout(watchdog);
    watchdog = setTimeout(() => {
      if (socket !== ws) return;
      lost(ws, 4408, "no answer from the service");
    }, silenceMs);
  }
  function lost(ws, code, reason) {
    if (socket !== ws) return;
    socket = null;
    if (watchdog) clearTimeout(watchdog);
    if (ws.readyState === ws.CONNECTING || ws.readyState === ws.OPEN) {
      try {
        ws.close();
      } catch {
      }
    }
    if (closed) return;
    const detail = reason || String(code);
    if (code === 4403 && !detail.startsWith("LIMIT_EXCEEDED") && typeof options.token !== "function") {
      stop(new CreditsError("UNAUTHENTICATED", detail));
      return;
    }
    if ([4400, 4401, 4409, 4429].includes(code)) {
      stop(new CreditsError("BAD_USER_INPUT", `the service closed the socket: ${detail}`));
      return;
    }
    retry(detail);
  }
  connect();
  return {
    get lastSequence() {
      return last;
    },
    close() {
      stop();
      return closedPromise;
    }
  };
}
export {
  watchBalance
};
