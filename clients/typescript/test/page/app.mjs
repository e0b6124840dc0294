// A frontend page built with the kit: two components showing one live
// balance through useBalance (one watch between them), in StrictMode.
import { createElement as h, StrictMode, useEffect } from "react";
import { createRoot } from "react-dom/client";

import { createCreditsClient } from "../../dist/index.js";
import { CreditsProvider, useBalance } from "../../dist/react.js";

const params = new URLSearchParams(location.hash.slice(1));
const client = createCreditsClient({ url: params.get("url"), token: params.get("token") });
window.__rendered = [];
window.__statuses = [];

function Balance({ id }) {
  const state = useBalance(params.get("workspace"));
  useEffect(() => {
    if (id === "a" && state.sequence !== null) window.__rendered.push(state.sequence);
  }, [id, state.sequence]);
  useEffect(() => {
    if (id === "a") window.__statuses.push(state.status);
  }, [id, state.status]);
  return h(
    "section",
    { id },
    h("p", { className: "total" }, state.balance ? String(state.balance.total) : "…"),
    h("p", { className: "status" }, state.status),
    h("p", { className: "paused" }, state.aiPaused ? "AI paused" : "AI on"),
  );
}

createRoot(document.getElementById("root")).render(
  h(StrictMode, null, h(CreditsProvider, { client }, h(Balance, { id: "a" }), h(Balance, { id: "b" }))),
);
