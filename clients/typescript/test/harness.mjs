// Runs the real service for the kit's tests: the binary named by
// PROTODESK_BINARY (debug or release), on SQLite in a temporary directory or
// on the PostgreSQL schema named by DATABASE_URL and DATABASE_SCHEMA, always
// behind a TCP proxy that a test can cut, pause, and point at a restarted
// server. Tokens are HS256, signed here with the server's secret.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const SECRET = "kit-test-secret-0123456789";
const BINARY = process.env.PROTODESK_BINARY;
if (!BINARY) throw new Error("PROTODESK_BINARY must name the service binary (the cargo test wrapper sets it)");

/** Where the tests run: "sqlite" or "postgres". */
export const BACKEND = process.env.DATABASE_URL ? "postgres" : "sqlite";

/** An HS256 token; `expiresIn` seconds from now (negative: already past). */
export function token({ role, workspace, sub = "kit", expiresIn = 3600 }) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const claims = { sub, role, exp: Math.floor(Date.now() / 1000) + expiresIn };
  if (workspace) claims.workspace_id = workspace;
  const unsigned = `${encode({ alg: "HS256", typ: "JWT" })}.${encode(claims)}`;
  return `${unsigned}.${createHmac("sha256", SECRET).update(unsigned).digest("base64url")}`;
}

/** A TCP proxy on a port of its own, to the current `upstream` port. */
export class Proxy {
  constructor() {
    this.sockets = new Set();
    this.upstream = null;
    this.paused = false;
    this.server = createServer((client) => {
      if (this.paused || !this.upstream) {
        client.destroy();
        return;
      }
      const server = connect(this.upstream, "127.0.0.1");
      for (const [a, b] of [[client, server], [server, client]]) {
        a.on("data", (chunk) => b.write(chunk));
        a.on("error", () => b.destroy());
        a.on("close", () => b.destroy());
        this.sockets.add(a);
        a.on("close", () => this.sockets.delete(a));
      }
    });
  }
  async listen() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = this.server.address().port;
    return this;
  }
  /** Cuts every connection through it (as a dropped network would). */
  cut() {
    for (const socket of this.sockets) socket.destroy();
  }
  /** Cuts everything and refuses new connections until `resume`. */
  pause() {
    this.paused = true;
    this.cut();
  }
  resume() {
    this.paused = false;
  }
  close() {
    this.cut();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

/** The service: started, killed (-9) and started again on one database. */
export class Service {
  constructor(env = {}) {
    this.env = env;
    this.directory = mkdtempSync(join(tmpdir(), "credits-kit-"));
    this.child = null;
    this.proxy = new Proxy();
  }

  static async start(env = {}) {
    const service = new Service(env);
    await service.proxy.listen();
    await service.spawn();
    return service;
  }

  /** The GraphQL endpoint, through the proxy. */
  get url() {
    return `http://127.0.0.1:${this.proxy.port}/graphql`;
  }
  /** The endpoint without the proxy. */
  get directUrl() {
    return `http://127.0.0.1:${this.port}/graphql`;
  }

  async spawn() {
    const env = {
      ...process.env,
      JWT_SECRET: SECRET,
      BIND_ADDR: "127.0.0.1:0",
      LOG_FORMAT: "json",
      RUST_LOG: "info",
      RATE_LIMIT_SUBJECT_PER_SECOND: "off",
      RATE_LIMIT_WORKSPACE_PER_SECOND: "off",
      ...this.env,
    };
    const child = spawn(BINARY, [], { cwd: this.directory, env, stdio: ["ignore", "ignore", "pipe"] });
    this.child = child;
    let log = "";
    this.port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the service did not start:\n${log}`)), 30_000);
      child.stderr.on("data", (chunk) => {
        log += chunk;
        const found = /serving GraphQL at http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
        if (found && !this.port) {
          clearTimeout(timer);
          resolve(Number(found[1]));
        }
      });
      child.on("exit", (code) => reject(new Error(`the service exited (${code}):\n${log}`)));
    });
    child.stderr.resume();
    for (let i = 0; i < 100; i++) {
      const ready = await fetch(`http://127.0.0.1:${this.port}/readyz`).then((r) => r.ok, () => false);
      if (ready) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    this.proxy.upstream = this.port;
  }

  /** kill -9: no drain, no goodbye to the sockets. */
  async kill() {
    const child = this.child;
    this.child = null;
    this.port = undefined;
    this.proxy.upstream = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.on("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async restart() {
    await this.kill();
    await this.spawn();
  }

  /** Stops the service, then audits its database with the binary's
   * `verify` (every invariant of every wallet) and throws if one fails. */
  async stop() {
    await this.kill();
    await this.proxy.close();
    const env = { ...process.env, JWT_SECRET: SECRET, ...this.env };
    const report = await new Promise((resolve) => {
      const child = spawn(BINARY, ["verify"], { cwd: this.directory, env, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (chunk) => (out += chunk));
      child.stderr.on("data", (chunk) => (out += chunk));
      child.on("exit", (code) => resolve({ code, out }));
    });
    rmSync(this.directory, { recursive: true, force: true });
    if (report.code !== 0 || !report.out.includes("every invariant holds")) {
      throw new Error(`verify failed:\n${report.out}`);
    }
  }

  /** A raw GraphQL call (not the kit's), straight to the server. */
  async post(bearer, query, variables = {}) {
    const response = await fetch(this.directUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
      body: JSON.stringify({ query, variables }),
    });
    return response.json();
  }

  /** A workspace with `credits` more than its trial grants. */
  async workspace(id, credits = 0) {
    const operator = token({ role: "operator" });
    const created = await this.post(operator, `mutation($id: ID!) { createWorkspace(input: {workspaceId: $id, name: $id}) { wallet { balance { total } } } }`, { id });
    if (!created.data) throw new Error(JSON.stringify(created));
    if (credits) {
      const adjusted = await this.post(operator, `mutation($id: ID!, $n: Int!) { adjustCredits(input: {workspaceId: $id, credits: $n, reason: "kit test"}) { balance { total } } }`, { id, n: credits });
      if (!adjusted.data) throw new Error(JSON.stringify(adjusted));
    }
    return id;
  }

  /** `n` TRIAGE spends straight to the server, `parallel` at a time. */
  async spends(workspace, n, parallel = 16, prefix = "direct") {
    const service = token({ role: "service", workspace });
    let next = 0;
    const worker = async () => {
      while (next < n) {
        const i = next++;
        const answer = await this.post(service, `mutation($k: String!) { spendCredit(input: {action: TRIAGE, idempotencyKey: $k}) { outcome } }`, { k: `${prefix}-${i}` });
        if (answer.data?.spendCredit?.outcome !== "CHARGED") throw new Error(JSON.stringify(answer));
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
  }

  /** The wallet's ledger sequences, oldest first, and its last sequence. */
  async ledger(workspace) {
    const operator = token({ role: "operator" });
    const sequences = [];
    let after = null;
    for (;;) {
      const page = await this.post(operator, `query($ws: ID, $after: String) { wallet(workspaceId: $ws) { lastSequence transactions(first: 100, after: $after) { pageInfo { hasNextPage endCursor } nodes { sequence } } } }`, { ws: workspace, after });
      const wallet = page.data.wallet;
      sequences.push(...wallet.transactions.nodes.map((node) => node.sequence));
      if (!wallet.transactions.pageInfo.hasNextPage) return { sequences: sequences.reverse(), last: wallet.lastSequence };
      after = wallet.transactions.pageInfo.endCursor;
    }
  }
}

/** Waits until `condition()` is true, or fails after `ms`. */
export async function until(condition, ms = 20_000, what = "a condition") {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
