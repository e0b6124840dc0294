// Drives the live balance page in a real headless Chromium.
//
// Usage: node console.mjs <base-url> <page-token> <spend-token> <expected-total>
// The page is given <page-token>; once it shows <expected-total> and is
// live, one TRIAGE spend is made with <spend-token> (outside the page) and
// the page must show the new balance, the SPEND row and the usage bar
// without a reload; then, with two budgets set and a Sidekick spend for
// agent ana, each budget with used / limit and the usage per agent. Every
// request the page makes must stay on <base-url>.
import { check, launch } from "./chromium.mjs";

const [base, pageToken, spendToken, expectedRaw] = process.argv.slice(2);
const expected = Number(expectedRaw);
const screenshot = process.env.CONSOLE_SCREENSHOT;


const browser = await launch();
try {
  const page = await browser.newPage();
  const foreign = [];
  const failures = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(base)) foreign.push(request.url());
  });
  page.on("pageerror", (error) => failures.push(error.message));

  await page.goto(`${base}/console`);
  await page.fill("#token", pageToken);
  await page.click("#connect");
  await page.waitForFunction((total) => document.getElementById("total").textContent === String(total), expected, { timeout: 10000 });
  await page.waitForFunction(() => document.getElementById("status").textContent === "live", null, { timeout: 10000 });
  check((await page.textContent("#reset")).length > 0, "the reset date is shown");

  const response = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${spendToken}` },
    body: JSON.stringify({
      query: 'mutation { spendCredit(input: {action: TRIAGE, idempotencyKey: "browser-1"}) { outcome balance { total } } }',
    }),
  });
  const spent = await response.json();
  check(spent.data?.spendCredit?.outcome === "CHARGED", `spend answered ${JSON.stringify(spent)}`);

  await page.waitForFunction((total) => document.getElementById("total").textContent === String(total), expected - 1, { timeout: 10000 });
  await page.waitForFunction(() => {
    const first = document.querySelector("#transactions tr");
    return first && first.children[1].textContent === "SPEND" && first.children[3].textContent === "-1";
  }, null, { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector('#chart rect[data-action="TRIAGE"][data-credits="1"]') !== null, null, { timeout: 10000 });
  check((await page.textContent("#last-event")).startsWith("SPEND -1"), "the live event is shown");
  // The runway follows the spend: a pace and the date it leads to.
  await page.waitForFunction(() => /^\d+\.\d credits a day · lasts until \d{4}-\d\d-\d\d \d\d:\d\d UTC/.test(document.getElementById("runway").textContent), null, { timeout: 10000 });

  // Budgets: each with used / limit, and usage per agent, refreshed live.
  const call = async (token, query) => {
    const answer = await fetch(`${base}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query }),
    });
    return answer.json();
  };
  for (const budget of [
    'name: "team-daily", appliesTo: WORKSPACE, window: DAY, limit: 10, mode: HARD',
    'name: "sidekick-each", appliesTo: EACH_AGENT, action: SIDEKICK, window: DAY, limit: 2, mode: HARD',
  ]) {
    const set = await call(pageToken, `mutation { setBudget(input: {${budget}}) { budget { name } } }`);
    check(set.data?.setBudget?.budget, `setBudget answered ${JSON.stringify(set)}`);
  }
  const forAna = await call(spendToken, 'mutation { spendCredit(input: {action: SIDEKICK, idempotencyKey: "browser-2", agentId: "ana"}) { outcome } }');
  check(forAna.data?.spendCredit?.outcome === "CHARGED", `agent spend answered ${JSON.stringify(forAna)}`);
  await page.waitForFunction((total) => document.getElementById("total").textContent === String(total), expected - 2, { timeout: 10000 });
  await page.waitForFunction(() => {
    const used = document.querySelector('#budget-rows tr[data-budget="team-daily"] td.used');
    return used && used.textContent === "1 / 10";
  }, null, { timeout: 10000 });
  check(
    (await page.textContent('#budget-rows tr[data-budget="sidekick-each"] td.used')) === "per agent, of 2",
    "an agent budget points to the per-agent table",
  );
  await page.waitForFunction(() => {
    const chip = document.querySelector('#agent-rows tr[data-agent="ana"] span[data-budget="sidekick-each"]');
    const credits = document.querySelector('#agent-rows tr[data-agent="ana"] td.credits');
    return chip && chip.textContent === "sidekick-each 1/2" && credits.textContent === "1";
  }, null, { timeout: 10000 });
  check(
    (await page.textContent('#agent-rows tr[data-agent=""] td.credits')) === "1",
    "spends naming no agent have their own row",
  );

  check(foreign.length === 0, `requests left the service: ${foreign.join(", ")}`);
  check(failures.length === 0, `page errors: ${failures.join("; ")}`);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`console ok: ${expected} -> ${expected - 1} live, SPEND row and usage bar shown; budgets and usage per agent shown`);
} finally {
  await browser.close();
}
