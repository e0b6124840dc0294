// After tsc: the trusted-documents manifest (hash -> document, as
// graphql-codegen's persisted documents write it) and the browser bundle of
// the live balance that the service's console page runs.
// `node scripts/manifest.mjs --server` also copies both to where the
// service keeps them (assets/trusted-documents.json, src/http/pages/live.js);
// a test checks those copies equal a fresh build.
import { copyFileSync, mkdirSync } from "node:fs";
import { build } from "esbuild";

mkdirSync("dist", { recursive: true });
copyFileSync("src/gql/persisted-documents.json", "dist/trusted-documents.json");
await build({
  entryPoints: ["src/live.ts"],
  bundle: true,
  format: "esm",
  target: "es2020",
  outfile: "dist/browser/live.js",
  banner: { js: "// Built from clients/typescript/src/live.ts (npm run build); do not edit." },
  logLevel: "warning",
});
if (process.argv.includes("--server")) {
  copyFileSync("dist/trusted-documents.json", "../../assets/trusted-documents.json");
  copyFileSync("dist/browser/live.js", "../../src/http/pages/live.js");
}
