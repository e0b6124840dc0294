// Everything here talks to this service only: GraphQL over POST for reads,
// and the client kit's watchBalance (graphql-transport-ws on the same
// /graphql, resumed by sequence) for the live balance.
import { watchBalance } from "/live.js";

const $ = (id) => document.getElementById(id);
const ACTIONS = [["TRIAGE", "#3158d4"], ["AUTO_RESOLVE", "#1b9e77"], ["SIDEKICK", "#e08a1e"]];
const WALLET_QUERY = `query Console($ws: ID, $from: DateTime!, $to: DateTime!) {
  wallet(workspaceId: $ws) {
    workspaceId plan aiPaused lastSequence trialEndsAt
    currentPeriod { end }
    balance { total allocation purchased bonus }
    forecast { dailyBurn depletesAt coversUntilReset }
    usage(from: $from, to: $to, bucket: DAY) { start total byAction { action credits } }
    transactions(first: 10) { edges { node { sequence kind action amount balanceAfter reference createdAt } } }
    workspace { timeZone }
    budgets { name appliesTo agentId action window limit mode }
    budgetUsage { budget { name } used resetsAt }
    usageByAgent(from: $from, to: $to) { agentId total }
  }
}`;
const state = { token: "", workspace: null, watch: null, lastSequence: 0, refresh: null };

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = kind || "";
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

async function gql(query, variables) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer " + state.token },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors && body.errors.length) {
    throw new Error(body.errors.map((e) => `${(e.extensions || {}).code || "ERROR"}: ${e.message}`).join("; "));
  }
  return body.data;
}

function utcDay(offset) {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + offset));
}

function renderBalance(balance) {
  $("total").textContent = balance.total;
  $("allocation").textContent = balance.allocation;
  $("purchased").textContent = balance.purchased;
  $("bonus").textContent = balance.bonus;
}

function renderChart(buckets) {
  const svg = $("chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const max = Math.max(1, ...buckets.map((b) => b.total));
  const width = 700 / buckets.length;
  buckets.forEach((bucket, index) => {
    let y = 160;
    for (const [action, color] of ACTIONS) {
      const used = (bucket.byAction.find((a) => a.action === action) || { credits: 0 }).credits;
      if (used <= 0) continue;
      const height = (used / max) * 140;
      y -= height;
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", index * width + 4);
      rect.setAttribute("y", y);
      rect.setAttribute("width", width - 8);
      rect.setAttribute("height", height);
      rect.setAttribute("fill", color);
      rect.setAttribute("data-action", action);
      rect.setAttribute("data-credits", used);
      const title = document.createElementNS(ns, "title");
      title.textContent = `${bucket.start.slice(0, 10)} ${action}: ${used}`;
      rect.appendChild(title);
      svg.appendChild(rect);
    }
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", index * width + width / 2);
    label.setAttribute("y", 176);
    label.setAttribute("text-anchor", "middle");
    label.setAttribute("font-size", "11");
    label.setAttribute("fill", "#6b7385");
    label.textContent = bucket.start.slice(8, 10);
    svg.appendChild(label);
    if (bucket.total > 0) {
      const total = document.createElementNS(ns, "text");
      total.setAttribute("x", index * width + width / 2);
      total.setAttribute("y", y - 4);
      total.setAttribute("text-anchor", "middle");
      total.setAttribute("font-size", "11");
      total.textContent = bucket.total;
      svg.appendChild(total);
    }
  });
}

function renderTransactions(edges) {
  const rows = edges.map(({ node }) => {
    const tr = document.createElement("tr");
    const cells = [
      [node.sequence, "num"], [node.kind], [node.action || ""], [node.amount > 0 ? "+" + node.amount : node.amount, "num"],
      [node.balanceAfter, "num"], [node.reference || ""], [node.createdAt.replace("T", " ").slice(0, 19)],
    ];
    for (const [value, className] of cells) {
      const td = document.createElement("td");
      td.textContent = value;
      if (className) td.className = className;
      tr.appendChild(td);
    }
    return tr;
  });
  $("transactions").replaceChildren(...rows);
}

function cell(tr, value, className) {
  const td = document.createElement("td");
  td.textContent = value;
  if (className) td.className = className;
  tr.appendChild(td);
  return td;
}

// Each agent's standing in the budgets that count it: one aliased
// budgetUsage per agent, in one request.
async function agentBudgets(agents) {
  if (!agents.length) return {};
  const params = agents.map((_, i) => `$a${i}: ID`).join(", ");
  const fields = agents.map((_, i) => `a${i}: budgetUsage(agentId: $a${i}) { budget { name limit } used }`).join(" ");
  const variables = { ws: state.workspace };
  agents.forEach((agent, i) => { variables["a" + i] = agent; });
  const data = await gql(`query Agents($ws: ID, ${params}) { wallet(workspaceId: $ws) { ${fields} } }`, variables);
  const byAgent = {};
  agents.forEach((agent, i) => { byAgent[agent] = data.wallet["a" + i]; });
  return byAgent;
}

async function renderBudgets(wallet) {
  $("time-zone").textContent = wallet.workspace.timeZone;
  const used = {};
  for (const usage of wallet.budgetUsage) used[usage.budget.name] = usage;
  const rows = wallet.budgets.map((budget) => {
    const tr = document.createElement("tr");
    tr.dataset.budget = budget.name;
    const counts = budget.appliesTo === "AGENT" ? "agent " + budget.agentId : budget.appliesTo === "EACH_AGENT" ? "each agent" : "workspace";
    for (const value of [budget.name, counts, budget.action || "every action", budget.window, budget.mode]) cell(tr, value);
    const usage = used[budget.name];
    const shown = usage ? `${usage.used} / ${budget.limit}` : `per agent, of ${budget.limit}`;
    const td = cell(tr, shown, "num used");
    if (usage && usage.used >= budget.limit) td.classList.add("over");
    cell(tr, usage && usage.resetsAt ? usage.resetsAt.replace("T", " ").slice(0, 16) : "");
    return tr;
  });
  $("budget-rows").replaceChildren(...rows);
  $("no-budgets").hidden = wallet.budgets.length > 0;
  const agents = wallet.usageByAgent.filter((row) => row.agentId).map((row) => row.agentId);
  const standing = await agentBudgets(agents);
  const agentRows = wallet.usageByAgent.map((row) => {
    const tr = document.createElement("tr");
    tr.dataset.agent = row.agentId || "";
    cell(tr, row.agentId || "(no agent)");
    cell(tr, row.total, "num credits");
    const td = cell(tr, "");
    for (const usage of (row.agentId ? standing[row.agentId] : []).filter((u) => u.budget)) {
      const chip = document.createElement("span");
      chip.className = "chip" + (usage.used >= usage.budget.limit ? " over" : "");
      chip.dataset.budget = usage.budget.name;
      chip.textContent = `${usage.budget.name} ${usage.used}/${usage.budget.limit}`;
      td.appendChild(chip);
    }
    return tr;
  });
  $("agent-rows").replaceChildren(...agentRows);
}

// The trailing week's pace and where it leads (Wallet.forecast).
function runway(forecast) {
  if (forecast.dailyBurn === 0) return "no spends in the last 7 days";
  const pace = `${forecast.dailyBurn.toFixed(1)} credits a day`;
  if (!forecast.depletesAt) return `${pace} · lasts over a century`;
  const until = `${pace} · lasts until ${forecast.depletesAt.replace("T", " ").slice(0, 16)} UTC`;
  if (forecast.coversUntilReset === false) return `${until}, before the next reset`;
  return forecast.coversUntilReset ? `${until}, past the next reset` : until;
}

async function loadWallet() {
  const data = await gql(WALLET_QUERY, {
    ws: state.workspace,
    from: utcDay(-13).toISOString(),
    to: utcDay(1).toISOString(),
  });
  const wallet = data.wallet;
  $("workspace-id").textContent = wallet.workspaceId;
  $("plan").textContent = wallet.plan;
  renderBalance(wallet.balance);
  $("paused").hidden = !wallet.aiPaused;
  $("reset").textContent = wallet.currentPeriod
    ? wallet.currentPeriod.end.replace("T", " ").slice(0, 16) + " UTC"
    : wallet.trialEndsAt ? "none (trial ends " + wallet.trialEndsAt.slice(0, 10) + ")" : "none";
  $("runway").textContent = runway(wallet.forecast);
  renderChart(wallet.usage);
  renderTransactions(wallet.transactions.edges);
  await renderBudgets(wallet);
  for (const id of ["wallet", "usage", "budgets", "history"]) $(id).hidden = false;
  return wallet;
}

function scheduleRefresh() {
  clearTimeout(state.refresh);
  state.refresh = setTimeout(() => loadWallet().catch((error) => showError(error.message)), 250);
}

function onChange(change) {
  renderBalance(change.balance);
  state.lastSequence = Math.max(state.lastSequence, change.sequence);
  const sign = change.delta > 0 ? "+" : "";
  $("last-event").textContent = `${change.kind} ${change.delta ? sign + change.delta : ""} at ${change.at.replace("T", " ").slice(0, 19)} UTC (#${change.sequence})`;
  if (change.kind !== "SNAPSHOT" && change.kind !== "LOW_BALANCE") scheduleRefresh();
  if (change.kind === "BUDGET_EXCEEDED") $("last-event").textContent += ` · budget ${change.budgetName} exhausted${change.agentId ? " for " + change.agentId : ""}`;
}

// The kit's watch: it reconnects with backoff and resumes after the last
// sequence it delivered, so no change is missed or shown twice.
function connectLive() {
  state.watch = watchBalance(state.workspace, onChange, {
    url: `${location.origin}/graphql`,
    token: state.token,
    afterSequence: state.lastSequence,
    onAlert: onChange,
    onGap: scheduleRefresh,
    backoff: { initialMs: 500, maxMs: 10000 },
    onStatus: (status, detail) => {
      if (status === "live") setStatus("live", "live");
      else if (status === "connecting") setStatus("connecting…");
      else if (status === "reconnecting") setStatus(`disconnected (${detail || "no answer"}); retrying`, "error");
    },
    onError: (error) => {
      // A refused token would be refused again: the watch has stopped.
      setStatus(error.code === "UNAUTHENTICATED" ? "token refused" : "subscription refused", "error");
      showError(`${error.code}: ${error.message}`);
    },
  });
}

async function connect() {
  if (state.watch) state.watch.close();
  state.watch = null;
  state.token = $("token").value.trim();
  state.workspace = $("workspace").value.trim() || null;
  sessionStorage.setItem("protodesk-console", JSON.stringify({ token: state.token, workspace: state.workspace }));
  showError("");
  try {
    const wallet = await loadWallet();
    state.lastSequence = wallet.lastSequence;
    connectLive();
  } catch (error) {
    setStatus("not connected", "error");
    showError(error.message);
  }
}

for (const [action, color] of ACTIONS) {
  const item = document.createElement("span");
  const swatch = document.createElement("i");
  swatch.style.background = color;
  item.append(swatch, action);
  $("legend").appendChild(item);
}
$("connect").addEventListener("click", connect);
const saved = JSON.parse(sessionStorage.getItem("protodesk-console") || "null");
if (saved) {
  $("token").value = saved.token || "";
  $("workspace").value = saved.workspace || "";
}
