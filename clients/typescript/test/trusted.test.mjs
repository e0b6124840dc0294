// Trusted documents: the kit's manifest on the server, enforced.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";

import { createCreditsClient, CreditsError } from "../dist/index.js";
import { BACKEND, Service, token, until } from "./harness.mjs";

const root = (path) => fileURLToPath(new URL(`../../../${path}`, import.meta.url));
const kit = (path) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const MANIFEST = root("assets/trusted-documents.json");

let service;
before(async () => {
  service = await Service.start({ TRUSTED_DOCUMENTS_MANIFEST: MANIFEST, TRUSTED_DOCUMENTS: "enforce" });
});
after(async () => {
  await service?.stop();
});

test("the service's copies are the kit's build: the manifest and the console's live.js", () => {
  assert.equal(readFileSync(MANIFEST, "utf8"), readFileSync(kit("dist/trusted-documents.json"), "utf8"),
    "assets/trusted-documents.json is stale: run `npm run build:server` in clients/typescript");
  assert.equal(readFileSync(root("src/http/pages/live.js"), "utf8"), readFileSync(kit("dist/browser/live.js"), "utf8"),
    "src/http/pages/live.js is stale: run `npm run build:server` in clients/typescript");
  const manifest = JSON.parse(readFileSync(MANIFEST, "utf8"));
  const names = Object.values(manifest).map((text) => /(query|mutation|subscription) (\w+)/.exec(text)[2]).sort();
  assert.deepEqual(names, ["BalanceChanged", "Budgets", "Capture", "Extend", "Release", "RemoveBudget", "Reserve", "SetBudget", "Spend", "Transactions", "Usage", "Wallet"]);
});

test(`${BACKEND}: with enforce, the kit's calls and watch work by id`, async () => {
  const ws = await service.workspace("trusted");
  const worker = createCreditsClient({ url: service.url, token: token({ role: "service", workspace: ws }), trustedDocuments: true });
  const seen = [];
  const watch = worker.watchBalance(ws, (event) => seen.push(event));
  await until(() => watch.lastSequence !== null, 10_000, "the snapshot");
  const before = (await worker.wallet()).balance.total;
  assert.equal((await worker.spend({ action: "TRIAGE" })).outcome, "CHARGED");
  const hold = await worker.reserve({ action: "AUTO_RESOLVE", credits: 2 });
  await worker.capture(hold.hold.id);
  const page = await worker.transactions({ first: 10 });
  assert.equal(page.edges[0].node.kind, "SPEND");
  await until(() => seen.at(-1)?.balance.total === before - 3, 10_000, "the watch to follow");
  await watch.close();
});

test(`${BACKEND}: with enforce, free-form documents are refused but an operator's`, async () => {
  const ws = await service.workspace("free-form");
  const admin = createCreditsClient({ url: service.url, token: token({ role: "admin", workspace: ws }) });
  const refused = await admin.wallet().catch((error) => error);
  assert.ok(refused instanceof CreditsError);
  assert.equal(refused.code, "TRUSTED_DOCUMENT_REQUIRED");
  assert.equal(refused.status, 403);
  assert.match(refused.message, /documentId/);

  const operator = await service.post(token({ role: "operator" }), "query($ws: ID) { wallet(workspaceId: $ws) { workspaceId } }", { ws });
  assert.deepEqual(operator.data, { wallet: { workspaceId: ws } }, "an operator (GraphiQL) sends any document");

  // The watch's free-form subscription is refused, once, with the code.
  const errors = [];
  const watch = admin.watchBalance(ws, () => assert.fail("no event"), { onError: (error) => errors.push(error) });
  await until(() => errors.length === 1, 10_000, "the refusal");
  assert.equal(errors[0].code, "TRUSTED_DOCUMENT_REQUIRED");
  await watch.close();
});

test(`${BACKEND}: an unknown id is a clear error; GET takes an id too`, async () => {
  const ws = await service.workspace("unknown-id");
  const bearer = token({ role: "agent", workspace: ws });
  const response = await fetch(service.directUrl, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
    body: JSON.stringify({ documentId: "sha256:0000" }),
  });
  assert.equal(response.status, 400);
  const body = await response.json();
  assert.equal(body.errors[0].extensions.code, "UNKNOWN_DOCUMENT");
  assert.match(body.errors[0].message, /sha256:0000/);

  const both = await fetch(service.directUrl, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
    body: JSON.stringify({ documentId: "sha256:0000", query: "{ __typename }" }),
  });
  assert.equal(both.status, 400);
  assert.match((await both.json()).errors[0].message, /either `query` or `documentId`/);

  const manifest = JSON.parse(readFileSync(MANIFEST, "utf8"));
  const walletId = Object.keys(manifest).find((id) => manifest[id].includes("query Wallet("));
  const params = new URLSearchParams({ documentId: walletId, variables: JSON.stringify({ workspaceId: ws }) });
  const got = await fetch(`${service.directUrl}?${params}`, { headers: { authorization: `Bearer ${bearer}` } });
  assert.equal((await got.json()).data.wallet.workspaceId, ws);
});
