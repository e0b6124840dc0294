// useBalance in Chromium (Debian's, driven by playwright-core): a page built
// with the kit follows 20 spends, survives a server restart and shows the
// paused state at zero.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";
import { chromium } from "playwright-core";

import { BACKEND, Service, token } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const present = existsSync(CHROMIUM);
if (!present && process.env.CI) throw new Error(`${CHROMIUM} is missing (apt-get install chromium)`);

let page;
let service;
let origin;
before(async () => {
  if (!present) return;
  const bundle = await build({
    entryPoints: [fileURLToPath(new URL("./page/app.mjs", import.meta.url))],
    bundle: true,
    format: "esm",
    write: false,
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "warning",
  });
  const script = bundle.outputFiles[0].text;
  page = createServer((request, response) => {
    if (request.url === "/app.js") {
      response.writeHead(200, { "content-type": "text/javascript" });
      response.end(script);
    } else {
      response.writeHead(200, { "content-type": "text/html" });
      response.end('<!doctype html><title>kit</title><div id="root"></div><script type="module" src="/app.js"></script>');
    }
  });
  await new Promise((resolve) => page.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${page.address().port}`;
  service = await Service.start({ CORS_ALLOWED_ORIGINS: origin });
});
after(async () => {
  await service?.stop();
  page?.close();
});

test(`${BACKEND}: useBalance follows spends, a restart, and pauses at zero`, { skip: !present && "no Chromium" }, async () => {
  const ws = await service.workspace("react");
  const agent = token({ role: "agent", workspace: ws });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const tab = await browser.newPage();
    const failures = [];
    tab.on("pageerror", (error) => failures.push(error.message));
    const start = (await service.ledger(ws)).last;
    const initial = (await service.post(agent, "{ wallet { balance { total } } }")).data.wallet.balance.total;
    const hash = new URLSearchParams({ url: service.url, token: agent, workspace: ws });
    await tab.goto(`${origin}/#${hash}`);
    const shows = (total) =>
      tab.waitForFunction((total) => [...document.querySelectorAll(".total")].every((p) => p.textContent === String(total)), total, { timeout: 20_000 });
    await shows(initial);
    await tab.waitForFunction(() => document.querySelector("#a .status").textContent === "live", null, { timeout: 10_000 });

    await service.spends(ws, 20, 4, "react");
    await shows(initial - 20);

    await service.restart();
    await tab.waitForFunction(() => window.__statuses.includes("reconnecting") && window.__statuses.at(-1) === "live", null, { timeout: 20_000 });
    await service.spends(ws, 1, 1, "after-restart");
    await shows(initial - 21);
    assert.equal(await tab.textContent("#a .paused"), "AI on");

    await service.post(token({ role: "operator" }), `mutation($ws: ID!, $n: Int!) { adjustCredits(input: {workspaceId: $ws, credits: $n, reason: "to zero"}) { balance { total } } }`, { ws, n: -(initial - 21) });
    await shows(0);
    await tab.waitForFunction(() => [...document.querySelectorAll(".paused")].every((p) => p.textContent === "AI paused"), null, { timeout: 10_000 });

    const rendered = await tab.evaluate(() => window.__rendered);
    const { last } = await service.ledger(ws);
    assert.equal(rendered[0], start, "the first render is the snapshot");
    assert.equal(rendered.at(-1), last);
    for (let i = 1; i < rendered.length; i++) assert.ok(rendered[i] > rendered[i - 1], `sequences rise: ${rendered}`);
    assert.deepEqual(failures, []);
  } finally {
    await browser.close();
  }
});
