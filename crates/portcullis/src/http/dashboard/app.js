// The Portcullis dashboard: reads /dashboard/state with the tab's bearer token and renders it with text nodes
// only (nothing from the server is ever parsed as HTML). It polls /dashboard/version, a change counter, and reads
// the state again when a change was applied, and at least once a minute.
"use strict";

const TOKEN_KEY = "portcullis-dashboard-token";
let lastChanges = null;
let lastRead = 0;

function token() {
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    // The token leaves the address bar (and the history) at once.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

async function get(path) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new Error("the token was refused (401): enter a valid one");
  }
  if (!response.ok) {
    throw new Error(path + " answered " + response.status + ": " + (await response.text()).slice(0, 300));
  }
  return response;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function replace(id, node) {
  const box = document.getElementById(id);
  box.replaceChildren(node);
}

function refused(section) {
  return section && section.error ? el("p", section.error.code + ": " + section.error.message, "error") : null;
}

function table(caption, columns, rows) {
  if (!rows.length) return el("p", "None.", "empty");
  const t = el("table");
  t.append(el("caption", caption));
  t.caption.className = "visually-hidden";
  const head = t.createTHead().insertRow();
  for (const [title] of columns) {
    const th = el("th", title);
    th.scope = "col";
    head.append(th);
  }
  const body = t.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const [, value, cls] of columns) {
      const cell = tr.insertCell();
      const v = value(row);
      cell.textContent = v === undefined || v === null ? "—" : String(v);
      if (cls) cell.className = cls(row) || "";
    }
  }
  return t;
}

function when(t) {
  return t ? new Date(t).toLocaleString() : "never";
}

function render(state) {
  document.getElementById("who").textContent =
    "Signed in as " + state.principal.name + " (role " + state.principal.role + ")";
  document.getElementById("updated").textContent = "Updated " + new Date(state.generated_at).toLocaleTimeString();
  const d = state.dashboard;
  const health = document.createElement("dl");
  if (d.error) {
    replace("health", refused(d));
  } else {
    const h = d.system_health || {};
    for (const [k, v] of [["Target", d.target + " (" + d.backend + ")"], ["CPU", h.cpu_usage + " %"],
      ["Memory", h.memory_usage + " %"], ["Uptime", h.uptime + " s"], ["Active blocks", d.active_blocks]]) {
      health.append(el("dt", k), el("dd", v));
    }
    replace("health", health);
    replace("threats", table("Threats", [["Type", (t) => t.type], ["Source", (t) => t.source_ip],
      ["Score", (t) => t.threat_score], ["Severity", (t) => t.severity, (t) => t.severity],
      ["Seen", (t) => t.attempt_count]], d.recent_threats || []));
    replace("countries", table("Countries", [["Country", (c) => c.country || c.code],
      ["Blocked", (c) => c.blocked ?? c.count]], d.top_blocked_countries || []));
  }
  const blocks = state.blocks;
  replace("blocks", refused(blocks) || table("Blocks", [["Address", (b) => b.ip_address ?? b.address],
    ["Reason", (b) => b.reason], ["Expires", (b) => when(b.expires_at)]], blocks.data || []));
  const grants = state.grants;
  replace("grants", refused(grants) || table("Grants", [["Address", (g) => g.address ?? g.ip_address],
    ["Reason", (g) => g.reason], ["Expires", (g) => when(g.expires_at)]], grants.data || []));
  replace("approvals", refused(state.approvals) || table("Approvals", [["Id", (a) => a.id], ["Who", (a) => a.principal],
    ["Tool", (a) => a.tool], ["Risk", (a) => a.risk_score], ["What", (a) => a.summary],
    ["Until", (a) => when(a.expires_at)]], Array.isArray(state.approvals) ? state.approvals : []));
  const changes = state.pending_changes;
  replace("changes", refused(changes) || table("Changes", [["Change", (c) => c.change_id], ["What", (c) => c.summary],
    ["Confirm by", (c) => when(c.confirm_by)]], changes.data || changes.changes || []));
  const audit = state.audit;
  // The page's own reads are audited too; the tail shows everything else.
  const records = (audit.data || []).map((entry) => entry.record || entry)
    .filter((r) => r.origin !== "dashboard").slice(0, 15);
  replace("audit", refused(audit) || table("Audit", [["Time", (r) => when(r.time)],
    ["Who", (r) => r.principal && r.principal.name], ["Tool", (r) => r.tool], ["Decision", (r) => r.decision],
    ["Outcome", (r) => r.outcome]], records));
}

function problem(message) {
  const p = document.getElementById("problem");
  p.textContent = message || "";
  p.hidden = !message;
}

async function refresh() {
  const state = await (await get("/dashboard/state" + location.search)).json();
  lastRead = Date.now();
  lastChanges = state.changes;
  render(state);
}

async function tick() {
  if (!token()) return;
  try {
    const { changes } = await (await get("/dashboard/version")).json();
    if (changes !== lastChanges || Date.now() - lastRead > 60000) await refresh();
    problem("");
  } catch (e) {
    problem(e.message);
    if (!token()) showSignIn();
  }
}

function showSignIn() {
  document.getElementById("sign-in").hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    document.getElementById("sign-in").hidden = true;
    tick();
  });
  document.getElementById("report").addEventListener("click", async () => {
    try {
      const blob = await (await get("/dashboard/report" + location.search)).blob();
      const link = el("a");
      link.href = URL.createObjectURL(blob);
      link.download = "security-report.html";
      link.click();
      URL.revokeObjectURL(link.href);
    } catch (e) {
      problem(e.message);
    }
  });
  if (!token()) showSignIn();
  tick();
  setInterval(tick, 2000);
});
