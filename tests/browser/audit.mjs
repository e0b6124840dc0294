// Runs graphql-http's server audits (the GraphQL over HTTP specification's
// conformance checks) against the URL given, and prints one JSON line per
// audit: {id, name, status, reason}. The Rust test decides what must pass.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql url>');
  process.exit(2);
}
const results = await auditServer({ url, fetchFn: fetch });
for (const result of results) {
  const line = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') line.reason = result.reason;
  console.log(JSON.stringify(line));
}
