// Drives the live balance page in a real headless Chromium.
//
// Usage: node console.mjs <base-url> <page-token> <spend-token> <expected-total>
// The page is given <page-token>; once it shows <expected-total> and is
// live, one TRIAGE spend is made with <spend-token> (outside the page) and
// the page must show the new balance, the SPEND row and the usage bar
// without a reload. Every request the page makes must stay on <base-url>.
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

  check(foreign.length === 0, `requests left the service: ${foreign.join(", ")}`);
  check(failures.length === 0, `page errors: ${failures.join("; ")}`);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`console ok: ${expected} -> ${expected - 1} live, SPEND row and usage bar shown`);
} finally {
  await browser.close();
}
