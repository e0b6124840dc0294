#!/usr/bin/env bash
# Rebuilds the GraphiQL assets served at / (compiled into the binary, so
# the page needs no CDN and works offline). Run from anywhere; needs npm.
# Versions are pinned; React 18 is the last line with UMD builds, and
# GraphiQL 3 is the last line that runs on them without a bundler.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent graphiql@3.8.3 react@18.3.1 react-dom@18.3.1 >/dev/null
for archive in *.tgz; do
  mkdir -p "${archive%.tgz}" && tar xzf "$archive" -C "${archive%.tgz}"
done
# graphiql.min.js of 3.8.3 is not minified (3.5 MB); esbuild makes it 1.5 MB.
npx --yes esbuild@0.25.12 graphiql-3.8.3/package/graphiql.min.js --minify --log-level=warning \
  --outfile=graphiql.js
gzip -9 -n -c graphiql.js >"$here/graphiql.js.gz"
gzip -9 -n -c graphiql-3.8.3/package/graphiql.min.css >"$here/graphiql.css.gz"
gzip -9 -n -c react-18.3.1/package/umd/react.production.min.js >"$here/react.js.gz"
gzip -9 -n -c react-dom-18.3.1/package/umd/react-dom.production.min.js >"$here/react-dom.js.gz"
cp graphiql-3.8.3/package/LICENSE "$here/LICENSE.graphiql"
cp react-18.3.1/package/LICENSE "$here/LICENSE.react"
(cd "$here" && sha256sum ./*.gz >SHA256SUMS)
