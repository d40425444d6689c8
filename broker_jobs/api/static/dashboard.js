// broker_jobs dashboard: polls /api/v1/overview and /health, renders, and drives the operate routes.
"use strict";

const TOKEN_KEY = "broker_jobs.token";
const REFRESH_MS = Number(document.body.dataset.refreshMs || 3000);
const $ = (sel) => document.querySelector(sel);
let seenRuns = null;
let timer = null;

// A token handed over in the address (`/?token=...`, printed by `broker-jobs serve`) moves to
// sessionStorage and leaves the address bar, so it is not bookmarked or shared by accident.
(function adoptTokenFromUrl() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

async function api(path, options = {}) {
  const headers = {Accept: "application/json", ...(options.headers || {})};
  if (token()) headers.Authorization = "Bearer " + token();
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {...options, headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body)});
  let payload = null;
  try { payload = await response.json(); } catch (e) { payload = null; }
  if (!response.ok) {
    const error = new Error((payload && (payload.message || payload.detail)) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return payload;
}

function when(iso) {
  if (!iso) return "—";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return esc(iso);
  const diff = (t - Date.now()) / 1000;
  const abs = Math.abs(diff);
  const text = abs < 5 ? "now" : abs < 90 ? `${Math.round(abs)}s` : abs < 5400 ? `${Math.round(abs / 60)}m`
    : abs < 129600 ? `${Math.round(abs / 3600)}h` : `${Math.round(abs / 86400)}d`;
  const rel = text === "now" ? "now" : diff > 0 ? `in ${text}` : `${text} ago`;
  return `<span title="${esc(new Date(t).toLocaleString())}">${rel}</span>`;
}

function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)}m ${Math.round((ms % 60000) / 1000)}s`;
}

function badge(text) {
  return text ? `<span class="badge b-${esc(text)}">${esc(String(text).replace(/_/g, " "))}</span>` : "—";
}

function trigger(value) {
  if (!value) return "—";
  if (typeof value === "string") return esc(value);
  return esc(value.cron || value.every || value.at || value.kind || JSON.stringify(value));
}

function sparkline(series, width = 160, height = 30) {
  const points = series && series.length ? series : new Array(30).fill(0);
  const max = Math.max(1, ...points);
  const step = width / (points.length - 1 || 1);
  const xy = points.map((v, i) => [i * step, height - 2 - (v / max) * (height - 4)]);
  const line = xy.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  const area = `${line} L${width},${height} L0,${height} Z`;
  const total = points.reduce((a, b) => a + b, 0);
  return `<svg class="spark" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"
    role="img" aria-label="${total} runs in 30 minutes"><title>${total} runs in the last 30 minutes, peak ${max}/min</title>
    <path class="area" d="${area}"/><path class="line" d="${line}"/></svg>`;
}

function rows(tbody, html, colspan, emptyText) {
  tbody.innerHTML = html || `<tr class="empty"><td colspan="${colspan}">${esc(emptyText)}</td></tr>`;
}

function renderTiles(data) {
  const q = data.queues || [];
  const sum = (k) => q.reduce((a, r) => a + (r[k] || 0), 0);
  const runs = data.runs || [];
  const done = runs.filter((r) => ["succeeded", "dead", "failed"].includes(r.status));
  const ok = done.filter((r) => r.status === "succeeded").length;
  const perMin = Object.values(data.throughput || {}).reduce((a, s) => a + (s[s.length - 1] || 0) + (s[s.length - 2] || 0), 0) / 2;
  const tiles = [
    ["Waiting", sum("waiting"), ""], ["Active", sum("active"), ""], ["Delayed", sum("delayed"), ""],
    ["Dead letters", sum("failed"), sum("failed") ? "bad" : "ok"],
    ["Runs / min", perMin.toFixed(perMin % 1 ? 1 : 0), ""],
    ["Success (recent)", done.length ? `${Math.round((100 * ok) / done.length)}%` : "—",
      done.length && ok / done.length < 0.9 ? "warn" : "ok"],
  ];
  $("#tiles").innerHTML = tiles.map(([label, value, cls]) =>
    `<div class="tile ${cls}"><div class="label">${label}</div><div class="value">${esc(value)}</div></div>`).join("");
}

function renderQueues(data) {
  const q = data.queues || [];
  const peak = Math.max(1, ...q.map((r) => (r.waiting || 0) + (r.active || 0) + (r.delayed || 0)));
  rows($("#queues tbody"), q.map((r) => {
    const depth = (r.waiting || 0) + (r.active || 0) + (r.delayed || 0);
    return `<tr data-queue="${esc(r.queue)}"><td><span class="job-name">${esc(r.queue)}</span>
      <div class="bar"><span data-width="${((100 * depth) / peak).toFixed(1)}"></span></div></td>
      <td class="num">${r.waiting ?? "—"}</td><td class="num">${r.active ?? "—"}</td><td class="num">${r.delayed ?? "—"}</td>
      <td class="num">${r.failed ? `<span class="error">${r.failed}</span>` : 0}</td><td class="num">${r.completed ?? 0}</td>
      <td class="num">${r.consumers ?? 0}</td><td>${sparkline((data.throughput || {})[r.queue])}</td></tr>`;
  }).join(""), 8, data.errors.queues || "no queues");
  // Widths through the CSSOM: the page's Content-Security-Policy refuses inline style attributes.
  document.querySelectorAll("#queues [data-width]").forEach((bar) => { bar.style.width = `${bar.dataset.width}%`; });
}

function lastRun(job) {
  const run = job.latest_run;
  const at = [run && run.started_at, job.last_run].filter(Boolean).sort().pop();
  if (!at) return "—";
  return when(at) + (run && run.duration_ms != null ? `<span class="sub">${duration(run.duration_ms)}</span>` : "");
}

function renderJobs(data) {
  const jobs = data.jobs || [];
  $("#jobs-note").textContent = data.errors.jobs ? data.errors.jobs : `${jobs.length} schedules`;
  rows($("#jobs tbody"), jobs.map((j) => {
    const state = !j.enabled ? "disabled" : j.paused ? "paused" : "scheduled";
    const toggle = j.paused
      ? `<button class="btn" data-action="resume" data-job="${esc(j.id)}">Resume</button>`
      : `<button class="btn btn-pause" data-action="pause" data-job="${esc(j.id)}">Pause</button>`;
    return `<tr data-job="${esc(j.id)}"><td><span class="job-name">${esc(j.id)}</span>
        <span class="sub">${esc(j.actor)} · ${esc(j.queue || "")} · ${esc(j.priority || "")}</span></td>
      <td class="mono">${trigger(j.trigger)}</td>
      <td>${j.paused ? badge("paused") + (j.note ? ` <span class="sub">${esc(j.note)}</span>` : "") : when(j.next_run)}</td>
      <td>${lastRun(j)}</td><td>${j.latest_run ? badge(j.latest_run.status) : badge(state)}
        ${j.last_outcome ? `<span class="sub">last slot: ${esc(String(j.last_outcome).replace(/_/g, " "))}</span>` : ""}</td>
      <td class="actions"><button class="btn btn-run" data-action="run" data-job="${esc(j.id)}">Run now</button>${toggle}</td></tr>`;
  }).join(""), 6, data.errors.jobs || "no schedules");
}

function renderRuns(data) {
  const runs = data.runs || [];
  const fresh = new Set();
  if (seenRuns) runs.forEach((r) => { if (!seenRuns.has(r.message_id)) fresh.add(r.message_id); });
  seenRuns = new Set(runs.map((r) => r.message_id));
  rows($("#runs tbody"), runs.map((r) => `<tr data-message-id="${esc(r.message_id)}" data-actor="${esc(r.actor)}"
      class="${fresh.has(r.message_id) ? "fresh" : ""}" title="${esc(r.error || r.message_id)}">
      <td>${badge(r.status)}</td><td><span class="job-name">${esc(r.actor)}</span>
      ${r.fire_id ? `<span class="sub">${esc(String(r.fire_id).split("@")[0])}</span>` : ""}
      ${r.error && r.status !== "succeeded" ? `<span class="sub reason error">${esc(r.error)}</span>` : ""}</td>
      <td>${esc(r.queue)}</td><td>${when(r.started_at || r.enqueued_at)}</td><td class="num">${duration(r.duration_ms)}</td></tr>`).join(""),
  5, data.errors.runs || "no runs yet");
}

function renderDead(data) {
  const dead = data.dead || [];
  $("#dead-note").textContent = data.errors.dead ? data.errors.dead : `${dead.length} waiting`;
  rows($("#dead tbody"), dead.slice().reverse().map((d) => `<tr data-dead-id="${esc(d.id)}">
      <td><span class="job-name">${esc(d.actor || "?")}</span><span class="sub">${esc(d.queue)} · ${d.attempts} attempt(s)</span></td>
      <td><span class="reason" title="${esc(d.reason)}">${esc(d.reason)}</span></td><td>${when(d.dead_at)}</td>
      <td class="actions"><button class="btn btn-replay" data-action="replay" data-id="${esc(d.id)}">Replay</button></td></tr>`).join(""),
  4, data.errors.dead || "no dead letters");
}

function renderHealth(report) {
  const pill = $("#health");
  pill.className = `pill pill-${report.status}`;
  const failing = ["broker", "database", "redis"].filter((k) => report[k] && !report[k].ok);
  pill.textContent = report.status + (failing.length ? ` · ${failing.join(", ")} down` : "");
  pill.title = `schedulers: ${report.schedulers.running} alive of ${report.schedulers.total} seen today; schedules failing: ${report.schedulers.errors}`;
}

function renderScheduler(status) {
  const el = $("#leader");
  if (!status) { el.className = "pill pill-muted"; el.textContent = "scheduler n/a"; return; }
  const leader = status.leader || status.leader_id || status.holder;
  const alive = status.running ?? status.alive ?? Boolean(leader);
  el.className = `pill ${alive ? "pill-healthy" : "pill-degraded"}`;
  el.textContent = alive ? `scheduler ${leader ? "· " + String(leader).slice(0, 24) : "running"}` : "scheduler stopped";
  if (status.paused) { el.className = "pill pill-degraded"; el.textContent = "scheduler paused"; }
  // Pause or resume the whole scheduler (every job, on every instance): POST /api/admin/schedulers/all/...
  const toggle = $("#scheduler-toggle");
  toggle.hidden = false;
  toggle.dataset.action = status.paused ? "resume-scheduler" : "pause-scheduler";
  toggle.className = status.paused ? "btn" : "btn btn-pause";
  toggle.textContent = status.paused ? "Resume scheduler" : "Pause scheduler";
  toggle.title = status.paused ? `paused: ${status.paused_note || ""}` : "pause every job on every scheduler instance";
}

function toast(text, kind = "") {
  const el = document.createElement("div");
  el.className = `toast ${kind}`;
  el.textContent = text;
  $("#toasts").appendChild(el);
  setTimeout(() => el.remove(), 4500);
}

function showLogin(message) {
  $("#app").hidden = true;
  $("#signout").hidden = true;
  $("#login").hidden = false;
  const err = $("#login-error");
  err.hidden = !message;
  err.textContent = message || "";
}

async function refresh() {
  if (!token()) { showLogin(); return; }
  try {
    const [data, report] = await Promise.all([api("/api/v1/overview"), api("/health").catch((e) => null)]);
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#signout").hidden = false;
    renderTiles(data); renderQueues(data); renderJobs(data); renderRuns(data); renderDead(data);
    renderScheduler(data.scheduler);
    if (report) renderHealth(report);
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(`Token refused: ${e.message}`);
    } else {
      $("#updated").textContent = `refresh failed: ${e.message}`;
    }
  }
}

async function act(button) {
  const {action, job, id} = button.dataset;
  let path, body, label;
  if (action === "run") { path = `/api/v1/jobs/${encodeURIComponent(job)}/run`; body = {}; label = `Run ${job}`; }
  if (action === "resume") { path = `/api/v1/jobs/${encodeURIComponent(job)}/resume`; label = `Resume ${job}`; }
  if (action === "pause") {
    const note = window.prompt(`Pause ${job}: why?`, "paused from the dashboard");
    if (note === null) return;
    path = `/api/v1/jobs/${encodeURIComponent(job)}/pause`; body = {note: note || "paused from the dashboard"};
    label = `Pause ${job}`;
  }
  if (action === "pause-scheduler") {
    const note = window.prompt("Pause the whole scheduler: why?", "paused from the dashboard");
    if (note === null) return;
    path = "/api/admin/schedulers/all/pause"; body = {note: note || "paused from the dashboard"};
    label = "Pause scheduler";
  }
  if (action === "resume-scheduler") { path = "/api/admin/schedulers/all/resume"; label = "Resume scheduler"; }
  if (action === "replay") { path = "/api/v1/dlq/replay"; body = {id}; label = "Replay dead letter"; }
  button.disabled = true;
  try {
    await api(path, {method: "POST", body});
    toast(`${label}: done`, "ok");
  } catch (e) {
    toast(`${label}: ${e.status === 403 ? "this token cannot operate (read scope)" : e.message}`, "bad");
  } finally {
    button.disabled = false;
    refresh();
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (button) act(button);
});

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("#token-input").value.trim().replace(/^Bearer\s+/i, "");
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("#token-input").value = "";
  refresh();
});

$("#signout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(); });

function loop() {
  clearTimeout(timer);
  refresh().finally(() => { timer = setTimeout(loop, document.hidden ? REFRESH_MS * 4 : REFRESH_MS); });
}
loop();
