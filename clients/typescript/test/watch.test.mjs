// watchBalance under faults, against the real service behind a TCP proxy:
// every ledger sequence reaches the callback exactly once, in order, ending
// at the ledger's last sequence (read back through `transactions`), or a
// gap is told.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { createCreditsClient } from "../dist/index.js";
import { BACKEND, Service, token, until } from "./harness.mjs";

const BACKOFF = { initialMs: 20, maxMs: 200 };
let service;
before(async () => {
  service = await Service.start();
});
after(async () => {
  await service?.stop();
});

/** A watch recording everything it is told. */
function record(client, workspace) {
  const seen = { events: [], alerts: [], gaps: [], statuses: [], errors: [] };
  seen.watch = client.watchBalance(workspace, (event) => seen.events.push(event), {
    backoff: BACKOFF,
    onAlert: (event) => seen.alerts.push(event),
    onGap: (gap) => seen.gaps.push(gap),
    onStatus: (status, detail) => seen.statuses.push([status, detail]),
    onError: (error) => seen.errors.push(error),
  });
  return seen;
}

/** Waits until the watch has delivered the ledger's last sequence, then
 * checks each sequence came once, in order: a SNAPSHOT, then every row. */
async function caughtUp(seen, workspace) {
  const { last } = await service.ledger(workspace);
  await until(() => seen.watch.lastSequence === last, 60_000, `the watch to reach ${last}`).catch((error) => {
    throw new Error(`${error.message} (at ${seen.watch.lastSequence}; ${JSON.stringify(seen.statuses.slice(-5))}; ${seen.errors})`);
  });
  const { sequences } = await service.ledger(workspace);
  assert.equal(sequences.at(-1), last);
  const delivered = seen.events.map((event) => event.sequence);
  assert.equal(seen.events[0].kind, "SNAPSHOT");
  let expected = delivered[0];
  for (const [index, event] of seen.events.entries()) {
    if (index === 0) continue;
    const gap = seen.gaps.find((gap) => gap.snapshot === event.sequence);
    if (event.kind === "SNAPSHOT") {
      assert.ok(gap && gap.after === expected, `a SNAPSHOT at ${event.sequence} only after a told gap`);
    } else {
      assert.equal(event.sequence, expected + 1, `sequence ${expected + 1} next, got ${event.sequence}`);
      assert.ok(sequences.includes(event.sequence), `${event.sequence} is a ledger row`);
    }
    expected = event.sequence;
  }
  assert.equal(expected, last);
  assert.deepEqual(seen.errors, []);
  return delivered;
}

/** `n` spends through the kit (retried across faults, each key once). */
async function spendThrough(client, n, parallel = 4) {
  let next = 0;
  const outcomes = [];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next += 1;
        outcomes.push((await client.spend({ action: "TRIAGE" })).outcome);
      }
    }),
  );
  return outcomes;
}

test(`${BACKEND}: the server killed and restarted mid-stream`, async () => {
  const ws = await service.workspace("restart", 1000);
  const seen = record(createCreditsClient({ url: service.url, token: token({ role: "agent", workspace: ws }) }), ws);
  const worker = createCreditsClient({ url: service.url, token: token({ role: "service", workspace: ws }), retries: 50, backoff: BACKOFF });
  // The snapshot first: a spend before it would be inside it, not an event.
  await until(() => seen.watch.lastSequence !== null, 10_000, "the snapshot");
  const spending = spendThrough(worker, 150);
  await until(() => seen.events.length > 30, 20_000, "30 events");
  await service.restart();
  await until(() => seen.events.length > 90, 20_000, "90 events");
  await service.restart();
  const outcomes = await spending;
  assert.equal(outcomes.length, 150);
  await caughtUp(seen, ws);
  const spends = seen.events.filter((event) => event.kind === "SPEND").length;
  const counts = {};
  for (const outcome of outcomes) counts[outcome] = (counts[outcome] ?? 0) + 1;
  assert.equal(spends, 150, `one SPEND event per spend, none doubled by a retry: ${JSON.stringify({ counts, gaps: seen.gaps, kinds: seen.events.map((event) => event.kind).filter((kind) => kind !== "SPEND") })}`);
  assert.ok(seen.statuses.filter(([status]) => status === "reconnecting").length >= 2);
  await seen.watch.close();
});

test(`${BACKEND}: sockets cut by the network`, async () => {
  const ws = await service.workspace("cuts", 1000);
  const seen = record(createCreditsClient({ url: service.url, token: token({ role: "agent", workspace: ws }) }), ws);
  await until(() => seen.watch.lastSequence !== null, 10_000, "the snapshot");
  const spending = service.spends(ws, 200, 8, "cut");
  for (let i = 0; i < 6; i++) {
    await new Promise((resolve) => setTimeout(resolve, 80));
    service.proxy.cut();
  }
  await spending;
  await caughtUp(seen, ws);
  assert.ok(seen.statuses.filter(([status]) => status === "reconnecting").length >= 3);
  await seen.watch.close();
});

test(`${BACKEND}: a token that expires is refreshed`, async () => {
  const ws = await service.workspace("expiry", 1000);
  let minted = 0;
  // Each token is 5 s from the end of its life (exp 55 s ago, within the
  // service's 60 s leeway): the service closes the socket with 4403 then.
  const refreshing = async () => {
    minted += 1;
    return token({ role: "agent", workspace: ws, expiresIn: -55 });
  };
  const seen = record(createCreditsClient({ url: service.url, token: refreshing }), ws);
  await until(() => seen.watch.lastSequence !== null, 10_000, "the snapshot");
  const deadline = Date.now() + 12_000;
  let round = 0;
  while (Date.now() < deadline) {
    await service.spends(ws, 5, 5, `expiry-${round++}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await caughtUp(seen, ws);
  const expired = seen.statuses.filter(([status, detail]) => status === "reconnecting" && /expired/.test(detail ?? ""));
  assert.ok(expired.length >= 2, `closed for expiry at least twice: ${JSON.stringify(seen.statuses)}`);
  assert.ok(minted >= 3, "a fresh token for each connection");
  await seen.watch.close();
});

test(`${BACKEND}: 1,000 spends while disconnected are replayed; more are a told gap`, async () => {
  const ws = await service.workspace("offline", 3000);
  const seen = record(createCreditsClient({ url: service.url, token: token({ role: "agent", workspace: ws }) }), ws);
  await caughtUp(seen, ws);
  service.proxy.pause();
  await service.spends(ws, 1000, 16, "offline");
  service.proxy.resume();
  await caughtUp(seen, ws);
  assert.deepEqual(seen.gaps, [], "1,000 missed rows are replayed, not skipped");
  assert.equal(seen.events.filter((event) => event.kind === "SPEND").length, 1000);

  const before = seen.watch.lastSequence;
  service.proxy.pause();
  await service.spends(ws, 1100, 16, "further");
  service.proxy.resume();
  await caughtUp(seen, ws);
  assert.equal(seen.gaps.length, 1, "more than the service replays: one gap, told");
  assert.equal(seen.gaps[0].after, before);
  assert.equal(seen.events.at(-1).kind, "SNAPSHOT");
  await seen.watch.close();
});

test(`${BACKEND}: close() stops the watch for good`, async () => {
  const ws = await service.workspace("closing");
  const seen = record(createCreditsClient({ url: service.url, token: token({ role: "agent", workspace: ws }) }), ws);
  await until(() => seen.watch.lastSequence !== null, 10_000, "the snapshot");
  await seen.watch.close();
  assert.deepEqual(seen.statuses.at(-1), ["closed", undefined]);
  const count = seen.events.length;
  await service.spends(ws, 3, 1, "after-close");
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(seen.events.length, count, "nothing after close");
});

test(`${BACKEND}: a token refused for good stops the watch with its code`, async () => {
  const ws = await service.workspace("refused");
  const seen = record(createCreditsClient({ url: service.url, token: token({ role: "agent", workspace: ws, expiresIn: -3600 }) }), ws);
  await until(() => seen.errors.length === 1, 10_000, "the refusal");
  assert.equal(seen.errors[0].code, "UNAUTHENTICATED");
  assert.deepEqual(seen.events, []);
  await seen.watch.close();
});
