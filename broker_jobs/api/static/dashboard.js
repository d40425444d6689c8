// broker_jobs console: views over /api/v1, live updates by server-sent events, operate routes for operate tokens.
"use strict";

const TOKEN_KEY = "broker_jobs.token";
const RETRY_MS = Number(document.body.dataset.refreshMs || 3000);
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
let seenRuns = null;
let canOperate = false;
let stream = null;          // the AbortController of the event stream
let lastOverview = null;
let historyCursor = null;
let historySeq = 0;
const selected = new Set();

// A token handed over in the address (`/?token=...`, printed by `broker-jobs serve`) moves to
// sessionStorage and leaves the address bar, so it is not bookmarked or shared by accident.
// It is checked before use: a refused one says so on the sign-in form.
let handedOver = false;
(function adoptTokenFromUrl() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token !== null) {
    sessionStorage.setItem(TOKEN_KEY, token);
    handedOver = true;
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
    const detail = payload && (payload.message || payload.detail);
    const error = new Error(typeof detail === "string" ? detail : response.statusText);
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
  return `<time datetime="${esc(iso)}" title="${esc(new Date(t).toLocaleString())}">${rel}</time>`;
}

function stamp(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? esc(iso) : `<time datetime="${esc(iso)}">${esc(t.toLocaleString())}</time>`;
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

function runLink(id, text) {
  return `<a class="job-name" href="#/runs/${encodeURIComponent(id)}">${esc(text)}</a>`;
}

function deadLink(id, text) {
  return `<a class="job-name" href="#/dead/${encodeURIComponent(id)}">${esc(text)}</a>`;
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

// ---- overview ---------------------------------------------------------------------------------------------

function renderTiles(data) {
  const q = data.queues || [];
  const sum = (k) => q.reduce((a, r) => a + (r[k] || 0), 0);
  const runs = data.runs || [];
  const done = runs.filter((r) => ["succeeded", "dead", "failed"].includes(r.status));
  const ok = done.filter((r) => r.status === "succeeded").length;
  const perMin = Object.values(data.throughput || {}).reduce((a, s) => a + (s[s.length - 1] || 0) + (s[s.length - 2] || 0), 0) / 2;
  const workers = data.workers || [];
  const tiles = [
    ["Waiting", sum("waiting"), ""], ["Active", sum("active"), ""], ["Delayed", sum("delayed"), ""],
    ["Dead letters", sum("failed"), sum("failed") ? "bad" : "ok"],
    ["Runs / min", perMin.toFixed(perMin % 1 ? 1 : 0), ""],
    ["Success (recent)", done.length ? `${Math.round((100 * ok) / done.length)}%` : "—",
      done.length && ok / done.length < 0.9 ? "warn" : "ok"],
    ["Workers", `${workers.filter((w) => !w.stale).length}`, workers.some((w) => w.stale) ? "warn" : ""],
  ];
  $("#tiles").innerHTML = tiles.map(([label, value, cls]) =>
    `<div class="tile ${cls}"><div class="label">${label}</div><div class="value">${esc(value)}</div></div>`).join("");
}

function renderQueues(data) {
  const q = data.queues || [];
  const peak = Math.max(1, ...q.map((r) => (r.waiting || 0) + (r.active || 0) + (r.delayed || 0)));
  rows($("#queues tbody"), q.map((r) => {
    const depth = (r.waiting || 0) + (r.active || 0) + (r.delayed || 0);
    return `<tr data-queue="${esc(r.queue)}"><td><a class="job-name" href="#/history?queue=${encodeURIComponent(r.queue)}"
        title="runs of queue ${esc(r.queue)}">${esc(r.queue)}</a>
      <div class="bar"><span data-width="${((100 * depth) / peak).toFixed(1)}"></span></div></td>
      <td class="num">${r.waiting ?? "—"}</td><td class="num">${r.active ?? "—"}</td><td class="num">${r.delayed ?? "—"}</td>
      <td class="num">${r.failed ? `<span class="error">${r.failed}</span>` : 0}</td><td class="num">${r.completed ?? 0}</td>
      <td class="num">${r.consumers ?? 0}</td><td class="hide-narrow">${sparkline((data.throughput || {})[r.queue])}</td></tr>`;
  }).join(""), 8, data.errors.queues || "no queues");
  // Widths through the CSSOM: the page's Content-Security-Policy refuses inline style attributes.
  $$("#queues [data-width]").forEach((bar) => { bar.style.width = `${bar.dataset.width}%`; });
}

function lastRun(job) {
  const run = job.latest_run;
  const at = [run && run.started_at, job.last_run].filter(Boolean).sort().pop();
  if (!at) return "—";
  const text = when(at) + (run && run.duration_ms != null ? `<span class="sub">${duration(run.duration_ms)}</span>` : "");
  return run && run.message_id ? `<a href="#/runs/${encodeURIComponent(run.message_id)}">${text}</a>` : text;
}

function renderJobs(data) {
  const jobs = data.jobs || [];
  $("#jobs-note").textContent = data.errors.jobs ? data.errors.jobs : `${jobs.length} schedules`;
  rows($("#jobs tbody"), jobs.map((j) => {
    const state = !j.enabled ? "disabled" : j.paused ? "paused" : "scheduled";
    const toggle = j.paused
      ? `<button class="btn" type="button" data-action="resume" data-job="${esc(j.id)}">Resume<span class="visually-hidden"> ${esc(j.id)}</span></button>`
      : `<button class="btn btn-pause" type="button" data-action="pause" data-job="${esc(j.id)}">Pause<span class="visually-hidden"> ${esc(j.id)}</span></button>`;
    const buttons = canOperate
      ? `<button class="btn btn-run" type="button" data-action="run" data-job="${esc(j.id)}">Run now<span class="visually-hidden"> ${esc(j.id)}</span></button>${toggle}` : "";
    return `<tr data-job="${esc(j.id)}"><td><span class="job-name">${esc(j.id)}</span>
        <span class="sub">${esc(j.actor)} · ${esc(j.queue || "")} · ${esc(j.priority || "")}</span></td>
      <td class="mono">${trigger(j.trigger)}</td>
      <td>${j.paused ? badge("paused") + (j.note ? ` <span class="sub">${esc(j.note)}</span>` : "") : when(j.next_run)}</td>
      <td>${lastRun(j)}</td><td>${j.latest_run ? badge(j.latest_run.status) : badge(state)}
        ${j.last_outcome ? `<span class="sub">last slot: ${esc(String(j.last_outcome).replace(/_/g, " "))}</span>` : ""}</td>
      <td class="actions">${buttons}</td></tr>`;
  }).join(""), 6, data.errors.jobs || "no schedules");
}

function runRow(r, fresh) {
  return `<tr data-message-id="${esc(r.message_id)}" data-actor="${esc(r.actor)}" class="${fresh ? "fresh" : ""}">
      <td>${badge(r.status)}</td><td>${runLink(r.message_id, r.actor)}
      ${r.fire_id ? `<span class="sub">${esc(String(r.fire_id).split("@")[0])}</span>` : ""}
      ${r.error && r.status !== "succeeded" ? `<span class="sub reason error" title="${esc(r.error)}">${esc(r.error)}</span>` : ""}</td>
      <td>${esc(r.queue)}</td><td>${when(r.started_at || r.enqueued_at)}</td><td class="num">${duration(r.duration_ms)}</td></tr>`;
}

function renderRuns(data) {
  const runs = data.runs || [];
  const fresh = new Set();
  if (seenRuns) runs.forEach((r) => { if (!seenRuns.has(r.message_id)) fresh.add(r.message_id); });
  seenRuns = new Set(runs.map((r) => r.message_id));
  rows($("#runs tbody"), runs.map((r) => runRow(r, fresh.has(r.message_id))).join(""), 5, data.errors.runs || "no runs yet");
}

function renderDead(data) {
  const dead = data.dead || [];
  $("#dead-note").textContent = data.errors.dead ? data.errors.dead : `${dead.length} waiting`;
  rows($("#dead tbody"), dead.slice().reverse().map((d) => `<tr data-dead-id="${esc(d.id)}">
      <td>${deadLink(d.id, d.actor || "?")}<span class="sub">${esc(d.queue)} · ${d.attempts} attempt(s)</span></td>
      <td><span class="reason" title="${esc(d.reason)}">${esc(d.reason)}</span></td><td>${when(d.dead_at)}</td>
      <td class="actions">${canOperate ? `<button class="btn btn-replay" type="button" data-action="replay" data-id="${esc(d.id)}">Replay<span class="visually-hidden"> ${esc(d.actor || "")} ${esc(d.id)}</span></button>` : ""}</td></tr>`).join(""),
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
  toggle.hidden = !canOperate;  // read-only tokens get no operate control at all
  if (canOperate) toggle.dataset.action = status.paused ? "resume-scheduler" : "pause-scheduler";
  else delete toggle.dataset.action;
  toggle.className = status.paused ? "btn" : "btn btn-pause";
  toggle.textContent = status.paused ? "Resume scheduler" : "Pause scheduler";
  toggle.title = status.paused ? `paused: ${status.paused_note || ""}` : "pause every job on every scheduler instance";
}

function renderOverview(data) {
  lastOverview = data;
  renderTiles(data); renderQueues(data); renderJobs(data); renderRuns(data); renderDead(data);
  renderScheduler(data.scheduler);
  if (currentView() === "workers") renderWorkers(data.workers || [], data.errors.workers);
  $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
}

// ---- workers ----------------------------------------------------------------------------------------------

function renderWorkers(workers, error) {
  $("#workers-note").textContent = error || `${workers.length} process(es), ${workers.filter((w) => w.stale).length} stale`;
  rows($("#workers tbody"), workers.map((w) => `<tr data-worker="${esc(w.worker_id)}" class="${w.stale ? "stale" : ""}">
      <td><span class="job-name">${esc(w.host)}</span><span class="sub">pid ${esc(w.pid)}</span></td>
      <td>${(w.queues || []).map((q) => `<a href="#/history?queue=${encodeURIComponent(q)}">${esc(q)}</a>`).join(", ")}</td>
      <td class="num">${esc(w.threads)}</td>
      <td>${(w.current || []).length ? (w.current || []).map((c) => runLink(c.message_id, c.actor)).join("<br>") : '<span class="muted">idle</span>'}</td>
      <td>${w.stale ? badge("stale") + " " : ""}${esc(w.age_s)} s ago</td><td>${esc(w.version)}</td></tr>`).join(""),
  6, error || "no worker has sent a heartbeat");
}

async function loadWorkers() {
  renderWorkers(await api("/api/v1/workers"));
}

// ---- history ----------------------------------------------------------------------------------------------

function historyParams() {
  const form = $("#history-form");
  const params = new URLSearchParams();
  for (const el of form.elements) {
    if (!el.name || !el.value) continue;
    params.set(el.name, el.type === "datetime-local" ? new Date(el.value).toISOString() : el.value);
  }
  return params;
}

async function loadHistory(more = false) {
  const params = historyParams();
  if (more && historyCursor) params.set("cursor", historyCursor);
  params.set("limit", "50");
  const seq = ++historySeq;
  const page = await api("/api/v1/runs?" + params.toString());
  if (seq !== historySeq) return;  // a newer search was started meanwhile: its answer wins
  const body = $("#history tbody");
  const html = page.runs.map((r) => `<tr data-message-id="${esc(r.message_id)}">
      <td>${badge(r.status)}</td><td>${runLink(r.message_id, r.actor)}${r.error ? `<span class="sub reason error" title="${esc(r.error)}">${esc(r.error)}</span>` : ""}</td>
      <td>${esc(r.queue)}</td><td class="mono">${esc(r.worker || "—")}</td><td>${when(r.finished_at || r.started_at)}</td>
      <td class="num">${duration(r.duration_ms)}</td></tr>`).join("");
  if (more) body.insertAdjacentHTML("beforeend", html);
  else rows(body, html, 6, "no run matches");
  $("#history").dataset.query = historyParams().toString();  // the search these rows answer
  historyCursor = page.next_cursor;
  $("#history-more").hidden = !historyCursor;
  $("#history-note").textContent = `${$$("#history tbody tr[data-message-id]").length} shown${historyCursor ? ", more below" : ""}`;
}

function fillHistoryForm(query) {
  const form = $("#history-form");
  for (const el of form.elements) {
    if (!el.name) continue;
    const value = query.get(el.name) || "";
    el.value = el.type === "datetime-local" && value ? value.slice(0, 16) : value;
  }
}

// ---- dead letters -----------------------------------------------------------------------------------------

function updateSelection() {
  $("#selected-count").textContent = `${selected.size} selected`;
  $$("[data-bulk]").forEach((b) => { b.disabled = selected.size === 0; });
}

async function loadGroups() {
  const groups = await api("/api/v1/dlq/groups");
  selected.clear();
  const total = groups.reduce((a, g) => a + g.count, 0);
  $("#groups-note").textContent = `${total} dead letter(s) in ${groups.length} group(s)`;
  $("#groups").innerHTML = groups.length ? groups.map((g, i) => `<section class="group" aria-labelledby="g-${i}">
      <h3 id="g-${i}"><span class="count">${g.count}</span> <span class="reason-text">${esc(g.reason)}</span>
        <span class="sub">${esc(g.actors.join(", "))}</span></h3>
      <div class="scroll-x"><table class="table compact fit"><thead><tr>
        <th scope="col" class="check operate-only"><input type="checkbox" data-group="${i}" aria-label="select all ${g.count} of this reason"></th>
        <th scope="col">Job</th><th scope="col">Queue</th><th scope="col" class="num">Attempts</th><th scope="col">Died</th></tr></thead><tbody>
        ${g.letters.map((d) => `<tr data-dead-id="${esc(d.id)}" data-group-row="${i}">
          <td class="check operate-only"><input type="checkbox" data-select="${esc(d.id)}" aria-label="select ${esc(d.actor)} ${esc(d.id)}"></td>
          <td>${deadLink(d.id, d.actor)}<span class="sub mono">${esc(d.id)}</span></td><td>${esc(d.queue)}</td>
          <td class="num">${esc(d.attempts)}</td><td>${when(d.dead_at)}</td></tr>`).join("")}
      </tbody></table></div></section>`).join("") : '<p class="muted empty-note">no dead letters</p>';
  updateSelection();
}

async function bulk(action) {
  const ids = [...selected];
  if (!ids.length) return;
  if (action === "purge" && !window.confirm(`Purge ${ids.length} dead letter(s) for good?`)) return;
  try {
    const path = action === "purge" ? "/api/v1/dlq/purge" : "/api/v1/dlq/replay-selected";
    const done = await api(path, {method: "POST", body: {ids}});
    const count = action === "purge" ? done.purged.length : done.replayed.length;
    const skipped = action === "purge" ? 0 : done.skipped.length;
    toast(`${action === "purge" ? "Purged" : "Replayed"} ${count} dead letter(s)${skipped ? `, ${skipped} skipped` : ""}`, "ok");
  } catch (e) {
    toast(`${action}: ${e.message}`, "bad");
  }
  loadGroups();
}

// ---- detail -----------------------------------------------------------------------------------------------

function pre(text) { return text ? `<pre class="code" tabindex="0">${esc(text)}</pre>` : ""; }

function json(value) { return JSON.stringify(value, null, 2); }

async function loadDetail(kind, id) {
  const d = await api(`/api/v1/${kind === "dead" ? "dlq" : "runs"}/${encodeURIComponent(id)}`);
  $("#h-detail").textContent = kind === "dead" ? `Dead letter · ${d.actor}` : `Run · ${d.actor}`;
  const facts = [
    ["Status", badge(d.status)], ["Message id", `<span class="mono">${esc(d.message_id)}</span>`],
    ["Job", esc(d.actor)], ["Queue", `<a href="#/history?queue=${encodeURIComponent(d.queue || "")}">${esc(d.queue)}</a>`],
    ["Priority", esc(d.priority || "—")], ["Attempts", esc(d.attempt ?? "—")],
    ["Host", esc(d.host || "—")], ["Worker", `<span class="mono">${esc(d.worker || "—")}</span>`],
    ["Fire id", d.fire_id ? `<span class="mono">${esc(d.fire_id)}</span>` : "—"],
    ["Schedule", esc(d.schedule_id || "—")], ["Slot", esc(d.slot || "—")],
    ["Enqueued", stamp(d.enqueued_at)], ["Started", stamp(d.started_at)], ["Finished", stamp(d.finished_at)],
    ["Duration", duration(d.duration_ms)],
  ];
  if (d.replay_of) facts.push(["Replay of", runLink(d.replay_of, d.replay_of)]);
  const attempts = (d.attempts || []).map((a) => `<li><strong>Attempt ${esc(a.attempt)}</strong> ${badge(a.status)}
      <span class="muted">${esc(a.worker || "")} · ${stamp(a.finished_at)}</span>
      <p class="error">${esc(a.error || "")}</p>${a.traceback ? `<details><summary>Traceback</summary>${pre(a.traceback)}</details>` : ""}</li>`).join("");
  const timeline = (d.timeline || []).map((e) => `<li>${stamp(e.at)} · <strong>${esc(e.event)}</strong>
      ${e.detail ? `<span class="muted">${esc(e.detail)}</span>` : ""}</li>`).join("");
  const letter = d.dead_letter;
  const edit = kind === "dead" && letter && letter.state === "dead" && canOperate ? `
    <form id="replay-form" class="edit" data-id="${esc(d.message_id)}">
      <h3>Replay with arguments</h3>
      <p class="muted">Checked against the job's arguments before anything is sent.</p>
      <label for="edit-args">Positional arguments (JSON array)</label>
      <textarea id="edit-args" rows="3" spellcheck="false">${esc(JSON.stringify(d.args || []))}</textarea>
      <label for="edit-kwargs">Keyword arguments (JSON object)</label>
      <textarea id="edit-kwargs" rows="3" spellcheck="false">${esc(JSON.stringify(d.kwargs || {}))}</textarea>
      <p id="edit-error" class="error" role="alert" hidden></p>
      <button class="btn btn-primary" type="submit">Replay</button>
      <button class="btn btn-danger" type="button" data-action="purge-one" data-id="${esc(d.message_id)}">Purge</button>
    </form>` : "";
  $("#detail").innerHTML = `
    <dl class="facts">${facts.map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join("")}</dl>
    ${letter ? `<h3>Dead letter</h3><p>${badge(letter.state)} <span class="error">${esc(letter.reason)}</span> · ${stamp(letter.dead_at)}</p>` : ""}
    ${d.error && !letter ? `<h3>Error</h3><p class="error">${esc(d.error)}</p>` : ""}
    <h3>Arguments</h3>${pre(json({args: d.args, kwargs: d.kwargs}))}
    ${d.report ? `<h3>Report</h3>${pre(json(d.report))}` : ""}
    <h3>Attempts</h3>${attempts ? `<ol class="attempts">${attempts}</ol>` : '<p class="muted">no failed attempt</p>'}
    <h3>Timeline</h3><ol class="timeline">${timeline}</ol>${edit}`;
  $("#detail-back").setAttribute("href", kind === "dead" ? "#/dead" : "#/history");
  $("#detail-back").textContent = kind === "dead" ? "back to the dead letters" : "back to the history";
}

async function replayEdited(form) {
  const err = $("#edit-error");
  err.hidden = true;
  let args, kwargs;
  try {
    args = JSON.parse($("#edit-args").value || "[]");
    kwargs = JSON.parse($("#edit-kwargs").value || "{}");
    if (!Array.isArray(args)) throw new Error("positional arguments: a JSON array is needed");
    if (typeof kwargs !== "object" || kwargs === null || Array.isArray(kwargs)) throw new Error("keyword arguments: a JSON object is needed");
  } catch (e) {
    err.textContent = e.message; err.hidden = false; return;
  }
  try {
    const done = await api(`/api/v1/dlq/${encodeURIComponent(form.dataset.id)}/replay`, {method: "POST", body: {args, kwargs}});
    const copy = done.replayed[0] && done.replayed[0].replayed_as;
    toast(`Replayed with new arguments as ${copy}`, "ok");
    await loadDetail("dead", form.dataset.id);
    if (copy) $("#detail").insertAdjacentHTML("afterbegin", `<p class="replayed-as">Replayed as ${runLink(copy, copy)}</p>`);
  } catch (e) {
    err.textContent = e.message; err.hidden = false;
  }
}

// ---- calendar ---------------------------------------------------------------------------------------------

async function loadCalendar(days) {
  const cal = await api(`/api/v1/calendar?days=${days}`);
  $$(".segmented a").forEach((a) => a.setAttribute("aria-current", a.dataset.days === String(days) ? "page" : "false"));
  const start = new Date(cal.start).getTime();
  const bucket = cal.bucket_s * 1000;
  const count = Math.round((new Date(cal.end).getTime() - start) / bucket);
  const label = (i) => {
    const t = new Date(start + i * bucket);
    return days === 1 ? `${String(t.getHours()).padStart(2, "0")}h` : t.toLocaleDateString(undefined, {weekday: "short", day: "numeric"});
  };
  $("#calendar thead").innerHTML = `<tr><th scope="col">Schedule</th>${[...Array(count).keys()].map((i) => `<th scope="col" class="num">${label(i)}</th>`).join("")}</tr>`;
  const marks = [];
  $("#calendar tbody").innerHTML = cal.jobs.map((j) => {
    const cells = new Array(count).fill(0);
    const times = cells.map(() => []);
    j.slots.forEach((s) => {
      const i = Math.min(count - 1, Math.floor((new Date(s).getTime() - start) / bucket));
      if (i >= 0) { cells[i] += 1; if (times[i].length < 6) times[i].push(new Date(s).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})); }
    });
    const marked = new Map();
    j.marks.forEach((m) => {
      const i = Math.min(count - 1, Math.floor((new Date(m.at).getTime() - start) / bucket));
      marked.set(i, m);
      marks.push(`<li data-mark="${esc(m.kind)}">${badge(m.kind)} <strong>${esc(j.id)}</strong> · ${stamp(m.at)} · ${esc(m.note)}</li>`);
    });
    const state = !j.enabled ? badge("disabled") : j.paused ? badge("paused") + (j.note ? ` <span class="sub">${esc(j.note)}</span>` : "") : "";
    return `<tr data-job="${esc(j.id)}" class="${j.paused || !j.enabled ? "paused" : ""}"><th scope="row"><span class="job-name">${esc(j.id)}</span>
        <span class="sub">${esc(j.trigger)} · ${esc(j.timezone)}</span>${state}</th>
      ${cells.map((c, i) => {
        const m = marked.get(i);
        const title = `${c} slot(s)${times[i].length ? ": " + times[i].join(", ") + (c > times[i].length ? " …" : "") : ""}${m ? " · " + m.note : ""}`;
        return `<td class="num cell${c ? " has" : ""}${m ? " mark" : ""}" title="${esc(title)}">${c ? (j.truncated && i === count - 1 ? `${c}+` : c) : ""}${m ? `<span class="mark-flag" aria-label="${esc(m.kind)}">${m.kind === "skipped" ? "⊘" : "⇅"}</span>` : ""}</td>`;
      }).join("")}</tr>`;
  }).join("") || `<tr class="empty"><td colspan="${count + 1}">no schedules</td></tr>`;
  $("#calendar-note").textContent = `${cal.jobs.length} schedule(s) from ${new Date(cal.start).toLocaleString()} to ${new Date(cal.end).toLocaleString()} · paused schedules are dimmed, their slots will not fire`;
  $("#calendar-marks").innerHTML = marks.join("") || '<li class="muted">no daylight-saving change touches these schedules in this window</li>';
}

// ---- shell: views, sign-in, live stream, actions ----------------------------------------------------------

function toast(text, kind = "") {
  const el = document.createElement("div");
  el.className = `toast ${kind}`;
  el.setAttribute("role", kind === "bad" ? "alert" : "status");
  el.textContent = text;
  $("#toasts").appendChild(el);
  setTimeout(() => el.remove(), 6000);
}

function showLogin(message) {
  stopStream();
  $("#app").hidden = true;
  $("#nav").hidden = true;
  $("#signout").hidden = true;
  $("#scope").hidden = true;
  $("#login").hidden = false;
  const err = $("#login-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("#token-input").focus();
}

function route() {
  const hash = window.location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  return {parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query || "")};
}

function currentView() {
  const {parts} = route();
  if (!parts.length) return "overview";
  if ((parts[0] === "runs" || parts[0] === "dead") && parts[1]) return "detail";
  return parts[0];
}

async function show() {
  if (!token()) { showLogin(); return; }
  const {parts, query} = route();
  const view = currentView();
  const known = ["overview", "history", "dead", "workers", "calendar", "detail"];
  const name = known.includes(view) ? view : "overview";
  $$(".view").forEach((v) => { v.hidden = v.id !== `view-${name}`; });
  $$("#nav a").forEach((a) => {
    const active = a.dataset.view === name || (name === "detail" && a.dataset.view === (parts[0] === "dead" ? "dead" : "history"));
    if (active) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
  const titles = {overview: "Overview", history: "History", dead: "Dead letters", workers: "Workers", calendar: "Calendar", detail: "Detail"};
  $("#view-title").textContent = titles[name];
  document.title = `${titles[name]} · broker_jobs console`;
  try {
    if (name === "history") { fillHistoryForm(query); await loadHistory(); }
    if (name === "dead") await loadGroups();
    if (name === "workers") await loadWorkers();
    if (name === "calendar") await loadCalendar(query.get("days") === "7" ? 7 : 1);
    if (name === "detail") await loadDetail(parts[0], parts[1]);
  } catch (e) {
    if (e.status === 401) { signedOut(e); return; }
    toast(e.message, "bad");
    if (name === "detail") $("#detail").innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

function signedOut(e, handed = false) {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin(handed ? `The token in the address was refused: ${e.message}. Paste a valid one.` : `Token refused: ${e.message}`);
}

function stopStream() {
  if (stream) stream.abort();
  stream = null;
  $("#live").className = "pill pill-muted";
  $("#live").textContent = "offline";
}

// Server-sent events over fetch (EventSource cannot send the Authorization header).
async function startStream() {
  stopStream();
  const controller = new AbortController();
  stream = controller;
  try {
    const response = await fetch("/api/v1/events", {headers: {Accept: "text/event-stream", Authorization: "Bearer " + token()},
      signal: controller.signal});
    if (response.status === 401 || response.status === 403) {
      const payload = await response.json().catch(() => ({}));
      signedOut(Object.assign(new Error(payload.detail || response.statusText), {status: response.status}));
      return;
    }
    if (!response.ok || !response.body) throw new Error(response.statusText);
    $("#live").className = "pill pill-healthy";
    $("#live").textContent = "live";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block);
        const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (event && event[1] === "overview" && data) renderOverview(JSON.parse(data));
      }
    }
  } catch (e) {
    if (controller.signal.aborted) return;
  }
  if (stream === controller) {
    $("#live").className = "pill pill-degraded";
    $("#live").textContent = "reconnecting";
    setTimeout(() => { if (stream === controller && token()) startStream(); }, RETRY_MS);
  }
}

async function refreshHealth() {
  try { renderHealth(await api("/health")); } catch (e) { /* the pill keeps its last state */ }
}

async function signIn(handed = false) {
  if (!token()) { showLogin(); return; }
  let me;
  try {
    me = await api("/api/v1/whoami");
  } catch (e) {
    if (e.status === 401 || e.status === 403) { signedOut(e, handed); return; }
    $("#updated").textContent = `cannot reach the API: ${e.message}`;
    setTimeout(() => signIn(handed), RETRY_MS);
    return;
  }
  canOperate = Boolean(me.operate);
  document.body.classList.toggle("read-only", !canOperate);
  $("#scope").hidden = false;
  $("#scope").textContent = canOperate ? "operate" : "read only";
  $("#scope").className = `pill ${canOperate ? "pill-healthy" : "pill-muted"}`;
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#nav").hidden = false;
  $("#signout").hidden = false;
  if (lastOverview) renderOverview(lastOverview);
  startStream();
  refreshHealth();
  show();
}

async function act(button) {
  const {action, job, id} = button.dataset;
  let path, body, label;
  if (action === "run") { path = `/api/v1/jobs/${encodeURIComponent(job)}/run`; body = {}; label = `Run ${job}`; }
  if (action === "resume") { path = `/api/v1/jobs/${encodeURIComponent(job)}/resume`; label = `Resume ${job}`; }
  if (action === "pause") {
    const note = window.prompt(`Pause ${job}: why?`, "paused from the console");
    if (note === null) return;
    path = `/api/v1/jobs/${encodeURIComponent(job)}/pause`; body = {note: note || "paused from the console"};
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
  if (action === "purge-one") {
    if (!window.confirm("Purge this dead letter for good?")) return;
    path = "/api/v1/dlq/purge"; body = {ids: [id]}; label = "Purge dead letter";
  }
  button.disabled = true;
  try {
    await api(path, {method: "POST", body});
    toast(`${label}: done`, "ok");
    if (action === "purge-one") window.location.hash = "#/dead";
  } catch (e) {
    toast(`${label}: ${e.status === 403 ? "this token cannot operate (read scope)" : e.message}`, "bad");
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (button) { act(button); return; }
  const bulkButton = event.target.closest("button[data-bulk]");
  if (bulkButton) bulk(bulkButton.dataset.bulk);
});

document.addEventListener("change", (event) => {
  const box = event.target;
  if (box.dataset.select) {
    if (box.checked) selected.add(box.dataset.select); else selected.delete(box.dataset.select);
    updateSelection();
  } else if (box.dataset.group !== undefined) {
    $$(`tr[data-group-row="${box.dataset.group}"] input[data-select]`).forEach((b) => {
      b.checked = box.checked;
      if (box.checked) selected.add(b.dataset.select); else selected.delete(b.dataset.select);
    });
    updateSelection();
  }
});

document.addEventListener("submit", (event) => {
  if (event.target.id === "replay-form") { event.preventDefault(); replayEdited(event.target); }
});

$("#history-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const params = new URLSearchParams();
  for (const el of event.target.elements) if (el.name && el.value) params.set(el.name, el.value);
  const target = `#/history${params.toString() ? "?" + params.toString() : ""}`;
  if (window.location.hash === target) loadHistory(); else window.location.hash = target;
});
$("#history-more").addEventListener("click", () => loadHistory(true));
$("#history-first").addEventListener("click", () => loadHistory(false));

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("#token-input").value.trim().replace(/^Bearer\s+/i, "");
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("#token-input").value = "";
  signIn();
});

$("#signout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(); });

window.addEventListener("hashchange", () => {
  show();
  $("#content").focus({preventScroll: true});
});

// Keyboard: "/" searches the history; g then o/h/d/w/c goes to a view.
let pendingG = false;
document.addEventListener("keydown", (event) => {
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "/") { event.preventDefault(); window.location.hash = "#/history"; setTimeout(() => $("#history-form input").focus(), 50); return; }
  if (pendingG) {
    pendingG = false;
    const views = {o: "#/", h: "#/history", d: "#/dead", w: "#/workers", c: "#/calendar"};
    if (views[event.key]) window.location.hash = views[event.key];
    return;
  }
  if (event.key === "g") pendingG = true;
});

setInterval(refreshHealth, RETRY_MS * 5);
signIn(handedOver);
