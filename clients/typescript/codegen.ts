// Typed operations from the service's schema (the checked-in
// schema.graphql, which a server test keeps equal to the served one).
// `npm run codegen` writes src/gql/; CI regenerates it and diffs.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["src/operations.ts"],
  ignoreNoDocuments: false,
  emitLegacyCommonJSImports: false,
  generates: {
    "src/gql/": {
      preset: "client",
      presetConfig: {
        fragmentMasking: false,
        // The trusted-documents manifest (hash -> document) and each
        // document's hash in its `__meta__`: graphql-codegen's persisted
        // documents, sent as `documentId`.
        persistedDocuments: { mode: "embedHashInDocument", hashAlgorithm: "sha256" },
      },
      config: {
        documentMode: "string",
        enumsAsTypes: true,
        useTypeImports: true,
        scalars: { DateTime: "string", ID: "string" },
        strictScalars: true,
      },
    },
  },
};

export default config;
