// `npm pack` gives a working tarball with types: it loads in Node, and a
// TypeScript file using it type-checks (and a wrong call does not).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const kit = fileURLToPath(new URL("..", import.meta.url));

test("npm pack: a tarball that loads and type-checks", () => {
  const directory = mkdtempSync(join(tmpdir(), "credits-pack-"));
  try {
    const [packed] = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", directory], { cwd: kit, encoding: "utf8" }));
    const files = packed.files.map((file) => file.path);
    for (const needed of ["dist/index.js", "dist/index.d.ts", "dist/react.d.ts", "dist/live.d.ts", "dist/trusted-documents.json", "README.md"]) {
      assert.ok(files.includes(needed), `${needed} is packed`);
    }
    assert.ok(!files.some((file) => file.startsWith("src/") || file.startsWith("test/")), "no sources or tests");

    // Installed as a consumer would have it, its dependencies beside it.
    const modules = join(directory, "app/node_modules");
    const target = join(modules, "@protodesk/credits");
    mkdirSync(target, { recursive: true });
    execFileSync("tar", ["-xzf", join(directory, packed.filename), "-C", target, "--strip-components=1"]);
    for (const dependency of ["@graphql-typed-document-node", "react", "@types"]) {
      symlinkSync(join(kit, "node_modules", dependency), join(modules, dependency));
    }
    const app = join(directory, "app");
    writeFileSync(join(app, "package.json"), JSON.stringify({ type: "module" }));
    const loaded = execFileSync("node", ["--input-type=module", "-e", "import * as kit from '@protodesk/credits'; import * as react from '@protodesk/credits/react'; console.log(Object.keys(kit).sort().join(','), typeof react.useBalance)"], { cwd: app, encoding: "utf8" });
    assert.equal(loaded.trim(), "CreditsError,createCreditsClient,isCreditsError,newKey,operations,watchBalance function");

    writeFileSync(join(app, "tsconfig.json"), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", lib: ["ES2022", "DOM"] }, include: ["*.ts"] }));
    writeFileSync(join(app, "worker.ts"), `
import { createCreditsClient, isCreditsError, type SpendResult } from "@protodesk/credits";
import { useBalance } from "@protodesk/credits/react";
const client = createCreditsClient({ url: "http://localhost:8080/graphql", token: async () => "t" });
export async function run(): Promise<number> {
  const spent: SpendResult = await client.spend({ action: "TRIAGE", reference: "ticket-1" });
  if (spent.outcome === "INSUFFICIENT_CREDITS") return spent.suggestedTopUp?.credits ?? 0;
  try { await client.capture("1"); } catch (error) { if (isCreditsError(error, "HOLD_NOT_ACTIVE")) return -1; }
  return spent.balance.available;
}
export const hook: typeof useBalance = useBalance;
`);
    const tsc = join(kit, "node_modules/typescript/bin/tsc");
    execFileSync("node", [tsc, "-p", "."], { cwd: app, encoding: "utf8" });
    writeFileSync(join(app, "wrong.ts"), `
import { createCreditsClient } from "@protodesk/credits";
export const wrong = createCreditsClient({ url: "", token: "" }).spend({ action: "NO_SUCH_ACTION" });
`);
    let output = "";
    try {
      execFileSync("node", [tsc, "-p", "."], { cwd: app, encoding: "utf8" });
    } catch (error) {
      output = error.stdout;
    }
    assert.match(output, /wrong\.ts.*NO_SUCH_ACTION/s, "a wrong action does not type-check");
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
  assert.ok(!readdirSync(kit).some((name) => name.endsWith(".tgz")));
});
