// Drives the server's pages and a cross-origin frontend in headless Chromium.
//
// Usage: node pages.mjs <base-url> <service-token> <workspace> <allowed-port> <other-port>
// 1. GraphiQL at <base-url>/ renders from the binary's own assets (no
//    request leaves <base-url>), runs a wallet query with the token given in
//    its Headers editor, and the page carries the security headers.
// 2. A page on 127.0.0.1:<allowed-port> (listed in CORS_ALLOWED_ORIGINS)
//    queries, spends and subscribes. The test serves both frontend pages
//    on ports it holds, so no port is picked here and bound later.
// 3. A page on 127.0.0.1:<other-port> (not listed) can do none of it.
// Prints one line "pages ok" when every check holds.
import { check, launch } from "./chromium.mjs";

const [base, token, workspace, allowedPort, otherPort] = process.argv.slice(2);


// Runs in the frontend page: a query, a spend and a subscription's first
// event, each reported as what happened rather than thrown.
async function crossOrigin({ base, token, key }) {
  const gql = async (query) => {
    try {
      const response = await fetch(`${base}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query }),
      });
      return await response.json();
    } catch (error) {
      return { blocked: String(error) };
    }
  };
  const read = await gql("{ wallet { balance { total } } }");
  const spend = await gql(`mutation { spendCredit(input: {action: TRIAGE, idempotencyKey: "${key}"}) { outcome balance { total } } }`);
  const live = await new Promise((resolve) => {
    const socket = new WebSocket(`${base.replace(/^http/, "ws")}/graphql`, "graphql-transport-ws");
    // Silence is not a refusal: a timeout is reported as such and fails.
    const timer = setTimeout(() => resolve({ timedOut: true }), 5000);
    socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}` } }));
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "connection_ack") {
        socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: "subscription { balanceChanged { kind balance { total } } }" } }));
      } else if (message.type === "next") {
        clearTimeout(timer);
        socket.close(1000);
        resolve(message.payload);
      }
    };
    socket.onerror = () => {
      clearTimeout(timer);
      resolve({ blocked: "websocket refused" });
    };
  });
  return { read, spend, live };
}

const browser = await launch();
try {
  // 1. GraphiQL.
  const page = await browser.newPage();
  const foreign = [];
  const failures = [];
  const violations = [];
  page.on("request", (request) => {
    if (!request.url().startsWith(base)) foreign.push(request.url());
  });
  page.on("pageerror", (error) => failures.push(error.message));
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) violations.push(message.text());
  });
  const response = await page.goto(`${base}/`);
  const headers = response.headers();
  check(headers["content-security-policy"]?.includes("default-src 'none'"), `CSP: ${headers["content-security-policy"]}`);
  check(headers["content-security-policy"]?.includes("frame-ancestors 'none'"), "CSP frame-ancestors");
  check(headers["x-content-type-options"] === "nosniff", "nosniff");
  check(headers["referrer-policy"] === "no-referrer", "referrer-policy");
  await page.waitForSelector(".graphiql-container", { timeout: 15000 });
  await page.waitForSelector(".graphiql-query-editor .CodeMirror", { timeout: 15000 });
  await page.evaluate((query) => {
    document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.setValue(query);
  }, "{ wallet { workspaceId balance { total } } }");
  await page.evaluate((headers) => {
    // The second tool editor is the headers editor (the first: variables).
    document.querySelectorAll(".graphiql-editor-tool .CodeMirror")[1].CodeMirror.setValue(headers);
  }, JSON.stringify({ Authorization: `Bearer ${token}` }));
  await page.click(".graphiql-execute-button");
  try {
    await page.waitForFunction(
      (workspace) => (document.querySelector(".result-window")?.textContent || "").includes(`"workspaceId": "${workspace}"`),
      workspace,
      { timeout: 10000 },
    );
  } catch (error) {
    const shown = await page.evaluate(() => document.querySelector(".result-window")?.textContent);
    throw new Error(`GraphiQL showed no wallet: ${shown}; page errors: ${failures.join("; ")}; CSP: ${violations.join("; ")}`);
  }
  check(foreign.length === 0, `GraphiQL requests left the service: ${foreign.join(", ")}`);
  check(failures.length === 0, `GraphiQL page errors: ${failures.join("; ")}`);
  check(violations.length === 0, `CSP violations: ${violations.join("; ")}`);

  // 2. A listed origin.
  const allowed = await browser.newPage();
  await allowed.goto(`http://127.0.0.1:${allowedPort}/`);
  const granted = await allowed.evaluate(crossOrigin, { base, token, key: "cors-allowed-1" });
  check(typeof granted.read.data?.wallet?.balance?.total === "number", `listed origin read: ${JSON.stringify(granted.read)}`);
  check(granted.spend.data?.spendCredit?.outcome === "CHARGED", `listed origin spend: ${JSON.stringify(granted.spend)}`);
  check(granted.live.data?.balanceChanged?.kind === "SNAPSHOT", `listed origin subscription: ${JSON.stringify(granted.live)}`);

  // 3. An origin not listed.
  const other = await browser.newPage();
  await other.goto(`http://127.0.0.1:${otherPort}/`);
  const refused = await other.evaluate(crossOrigin, { base, token, key: "cors-other-1" });
  check(refused.read.blocked, `unlisted origin read was not blocked: ${JSON.stringify(refused.read)}`);
  check(refused.spend.blocked, `unlisted origin spend was not blocked: ${JSON.stringify(refused.spend)}`);
  check(refused.live.blocked === "websocket refused", `unlisted origin subscription was not refused: ${JSON.stringify(refused.live)}`);
  console.log("pages ok");
} finally {
  await browser.close();
}
