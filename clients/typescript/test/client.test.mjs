// Typed calls, idempotent retries and typed errors, against the real
// service (see harness.mjs).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { createCreditsClient, CreditsError, isCreditsError } from "../dist/index.js";
import { BACKEND, Service, token } from "./harness.mjs";

let service;
before(async () => {
  service = await Service.start();
});
after(async () => {
  await service?.stop();
});

test(`${BACKEND}: typed calls read and spend, page and hold`, async () => {
  const ws = await service.workspace("calls");
  const worker = createCreditsClient({ url: service.url, token: token({ role: "service", workspace: ws }) });
  const admin = createCreditsClient({ url: service.url, token: async () => token({ role: "admin", workspace: ws }) });

  const wallet = await worker.wallet();
  assert.equal(wallet.workspaceId, ws);
  assert.equal(wallet.balance.total, wallet.balance.available + wallet.balance.held);

  const spent = await worker.spend({ action: "TRIAGE", reference: "ticket-1" });
  assert.equal(spent.outcome, "CHARGED");
  assert.equal(spent.balance.total, wallet.balance.total - 1);
  assert.match(spent.idempotencyKey, /^[0-9a-f-]{32,36}$/, "a key was generated");
  assert.equal(spent.transaction.kind, "SPEND");
  const again = await worker.spend({ action: "TRIAGE", reference: "ticket-1", idempotencyKey: spent.idempotencyKey });
  assert.equal(again.outcome, "DUPLICATE");
  assert.equal(again.transaction.id, spent.transaction.id);

  for (let i = 0; i < 4; i++) await worker.spend({ action: "SIDEKICK", agentId: "ana" });
  const page = await worker.transactions({ first: 2 });
  assert.equal(page.edges.length, 2);
  assert.equal(page.pageInfo.hasNextPage, true);
  const all = [];
  for await (const transaction of worker.allTransactions({ pageSize: 2 })) all.push(transaction.sequence);
  const { sequences } = await service.ledger(ws);
  assert.deepEqual(all, [...sequences].reverse(), "every transaction, newest first, across pages");

  const now = new Date();
  const usage = await worker.usage({ from: new Date(now.getTime() - 86_400_000), to: new Date(now.getTime() + 86_400_000), bucket: "DAY" });
  assert.equal(usage.reduce((sum, bucket) => sum + bucket.total, 0), 5);

  await admin.setBudget({ name: "daily", appliesTo: "WORKSPACE", window: "DAY", limit: 100, mode: "HARD" });
  const budgets = await worker.budgets();
  assert.deepEqual(budgets.map((usage) => [usage.budget.name, usage.used]), [["daily", 0]]);
  await admin.removeBudget({ name: "daily" });
  assert.deepEqual(await worker.budgets(), []);

  const reserved = await worker.reserve({ action: "AUTO_RESOLVE", credits: 5, ttlSeconds: 60 });
  assert.equal(reserved.outcome, "HELD");
  assert.equal(reserved.balance.held, 5);
  const extended = await worker.extend(reserved.hold.id, 120);
  assert.equal(extended.hold.state, "HELD");
  const captured = await worker.capture(reserved.hold.id, 3);
  assert.equal(captured.hold.state, "CAPTURED");
  assert.equal(captured.transaction.amount, -3);
  assert.equal(captured.balance.held, 0);
  const replay = await worker.capture(reserved.hold.id, 3);
  assert.equal(replay.replayed, true);
  const second = await worker.reserve({ action: "AUTO_RESOLVE" });
  const released = await worker.release(second.hold.id, "the ticket was closed");
  assert.equal(released.hold.state, "RELEASED");
  assert.equal((await worker.wallet()).balance.total, wallet.balance.total - 5 - 3);
});

test(`${BACKEND}: errors are values with the service's code`, async () => {
  const ws = await service.workspace("errors");
  const agent = createCreditsClient({ url: service.url, token: token({ role: "agent", workspace: ws, sub: "ana" }) });
  const worker = createCreditsClient({ url: service.url, token: token({ role: "service", workspace: ws }) });
  const expired = createCreditsClient({ url: service.url, token: token({ role: "service", workspace: ws, expiresIn: -3600 }) });

  const codeOf = async (call) => {
    try {
      await call();
    } catch (error) {
      assert.ok(error instanceof CreditsError, `a CreditsError, not ${error}`);
      return error.code;
    }
    assert.fail("the call did not fail");
  };
  assert.equal(await codeOf(() => agent.spend({ action: "TRIAGE" })), "FORBIDDEN");
  assert.equal(await codeOf(() => expired.wallet()), "UNAUTHENTICATED");
  assert.equal(await codeOf(() => worker.wallet("another-workspace")), "NOT_FOUND");
  await worker.spend({ action: "TRIAGE", idempotencyKey: "same-key" });
  assert.equal(await codeOf(() => worker.spend({ action: "SIDEKICK", idempotencyKey: "same-key" })), "IDEMPOTENCY_CONFLICT");
  const hold = await worker.reserve({ action: "TRIAGE" });
  await worker.release(hold.hold.id, "not needed");
  assert.equal(await codeOf(() => worker.capture(hold.hold.id)), "HOLD_NOT_ACTIVE");
  assert.equal(await codeOf(() => worker.spend({ action: "TRIAGE", reference: "x".repeat(10_000) })), "BAD_USER_INPUT");
  const unreachable = createCreditsClient({ url: "http://127.0.0.1:9/graphql", token: "t", retries: 1, backoff: { initialMs: 1 } });
  const failure = await unreachable.wallet().catch((error) => error);
  assert.ok(isCreditsError(failure, "NETWORK_ERROR"), String(failure));
  // Running out is an outcome, not an error.
  const broke = await service.workspace("errors-broke");
  const brokeWorker = createCreditsClient({ url: service.url, token: token({ role: "service", workspace: broke }) });
  const total = (await brokeWorker.wallet()).balance.total;
  await service.post(token({ role: "operator" }), `mutation($ws: ID!, $n: Int!) { adjustCredits(input: {workspaceId: $ws, credits: $n, reason: "empty"}) { balance { total } } }`, { ws: broke, n: -total });
  const refused = await brokeWorker.spend({ action: "TRIAGE" });
  assert.equal(refused.outcome, "INSUFFICIENT_CREDITS");
  assert.equal(refused.aiPaused, true);
});

test(`${BACKEND}: a spend whose answer was lost is retried with its key and charged once`, async () => {
  const ws = await service.workspace("retries");
  const before = (await service.ledger(ws)).last;
  let lost = 0;
  let sent = 0;
  // The request reaches the service, the answer never comes back: twice.
  const flaky = async (url, init) => {
    sent += 1;
    const response = await fetch(url, init);
    if (lost < 2) {
      lost += 1;
      await response.text();
      throw new TypeError("fetch failed: socket hang up");
    }
    return response;
  };
  const worker = createCreditsClient({
    url: service.url,
    token: token({ role: "service", workspace: ws }),
    fetch: flaky,
    backoff: { initialMs: 10, maxMs: 50 },
  });
  const spent = await worker.spend({ action: "AUTO_RESOLVE" });
  assert.equal(sent, 3);
  assert.equal(spent.outcome, "DUPLICATE", "the third try finds the first one's charge");
  const { sequences, last } = await service.ledger(ws);
  assert.equal(last, before + 1, "one SPEND row");
  assert.equal(sequences.length, last);

  // The service away for a moment: the retries carry the call across.
  service.proxy.pause();
  setTimeout(() => service.proxy.resume(), 300);
  const patient = createCreditsClient({ url: service.url, token: token({ role: "service", workspace: ws }), retries: 8, backoff: { initialMs: 50, maxMs: 200 } });
  const later = await patient.spend({ action: "TRIAGE" });
  assert.equal(later.outcome, "CHARGED");
  assert.equal((await service.ledger(ws)).last, before + 2);
});
