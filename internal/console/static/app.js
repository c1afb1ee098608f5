// Ferry's web console: plain JavaScript, no build step. It talks to
// /console/api/ (docs/console.md) with the session cookie, and sends the
// session's CSRF token with every change.
"use strict";

const API = "/console/api";
const WINDOW = 600; // samples kept in the plots: ten minutes at one per second
const MAX_TENANT_SERIES = 8;
const OTHERS = "(others)"; // the tenants a sample adds up
const REFRESH_MS = 3000; // period of the clients' and sessions' lists

const state = {
  me: null,
  tenant: "",
  view: "overview",
  live: null,               // EventSource of /live
  inspect: null,            // EventSource of /inspect
  analytics: null,          // EventSource of an analytics stream
  plots: {},                // the overview's LivePlots
  analyticsPlot: null,      // the analytics panel's LivePlot
  analyticsSeen: new Set(), // ids and revisions of the analytics rows shown
  refresh: 0,               // interval that reloads the clients or sessions
};

const $ = (sel) => document.querySelector(sel);

// el builds an element; text goes in as text, never as HTML.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function flash(msg) {
  $("#flash").textContent = msg || "";
}

// turn numbers a load of a list; current reports whether it is still the
// latest one, so that an older answer arriving late (a reload racing a
// change) never overwrites a newer one.
const turns = {};
function turn(list) { turns[list] = (turns[list] || 0) + 1; return turns[list]; }
function current(list, mine) { return turns[list] === mine; }

// armed makes button ask for a second click within a few seconds before
// it runs action: a change that cannot be undone needs two, and no modal
// dialog stops the page.
function armed(button, what, action) {
  const label = button.textContent;
  let timer = 0;
  button.addEventListener("click", async () => {
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = "Click again to " + what;
      timer = setTimeout(() => { button.classList.remove("armed"); button.textContent = label; }, 4000);
      return;
    }
    clearTimeout(timer);
    button.disabled = true;
    try { await action(); } catch (e) { flash(e.message); }
    button.disabled = false;
    button.classList.remove("armed");
    button.textContent = label;
  });
  return button;
}

class APIError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

// call sends one API request; body, if any, goes as JSON.
async function call(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = state.me ? state.me.csrf : "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(API + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 401 && path !== "/login") {
    showLogin();
    throw new APIError(401, "logged out");
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!resp.ok) {
    throw new APIError(resp.status, (data && data.error) || resp.statusText);
  }
  return data;
}

const enc = encodeURIComponent;

// ---- login

function showLogin() {
  stopStreams();
  state.me = null;
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-password").focus();
}

async function start() {
  try {
    state.me = await call("GET", "/me");
  } catch (e) {
    if (e.status !== 401) $("#login-error").textContent = e.message;
    showLogin();
    return;
  }
  enter();
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    state.me = await call("POST", "/login", { user: $("#login-user").value, password: $("#login-password").value });
    $("#login-password").value = "";
    enter();
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
});

$("#logout").addEventListener("click", async () => {
  try { await call("POST", "/logout"); } catch (e) { /* logged out anyway */ }
  showLogin();
});

async function enter() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  const me = state.me;
  $("#whoami").textContent = me.user + (me.all_tenants ? "" : " (" + (me.tenants || []).join(", ") + ")");
  document.querySelectorAll(".hubwide").forEach((e) => { e.hidden = !me.all_tenants; });
  $("#hubwide-note").hidden = me.all_tenants;
  await loadTenants();
  startLive();
  checkAnalytics();
  show(location.hash.slice(1) || "overview");
}

// ---- navigation and the tenant

document.querySelectorAll("header nav button").forEach((b) => {
  b.addEventListener("click", () => { location.hash = b.dataset.view; });
});
window.addEventListener("hashchange", () => show(location.hash.slice(1)));

function show(view) {
  if (!$("#view-" + view)) view = "overview";
  state.view = view;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== "view-" + view; });
  document.querySelectorAll("header nav button").forEach((b) => b.classList.toggle("active", b.dataset.view === view));
  flash("");
  checkAnalytics(); // queries come and go: the panel shows while the tenant has some
  const load = { clients: loadClients, sessions: loadSessions, retained: loadRetained, registry: loadRegistry, analytics: loadQueries }[view];
  if (load) load().catch((e) => flash(e.message));
  // Who is connected changes all the time: those lists follow.
  clearInterval(state.refresh);
  const follow = { clients: loadClients, sessions: loadSessions }[view];
  if (follow) state.refresh = setInterval(() => { if (!document.hidden) follow().catch(() => {}); }, REFRESH_MS);
  if (view === "overview") Object.values(state.plots).forEach((p) => p.resize());
}

// loadTenants fills the tenant selector: the registry's tenants the user
// sees and the default tenant of anonymous clients.
async function loadTenants() {
  let ids = [];
  try {
    const res = await call("GET", "/v1/tenants?pageSize=200");
    ids = (res.result || []).map((t) => t.id);
  } catch (e) {
    if (e.status !== 404) flash("tenants: " + e.message); // 404: none yet
  }
  const me = state.me;
  const allowed = (t) => me.all_tenants || (me.tenants || []).includes(t);
  if (allowed(me.default_tenant) && !ids.includes(me.default_tenant)) ids.unshift(me.default_tenant);
  if (!me.all_tenants) for (const t of me.tenants || []) if (!ids.includes(t)) ids.push(t);
  const sel = $("#tenant-select");
  const keep = state.tenant;
  sel.replaceChildren(...ids.map((id) => el("option", { value: id, textContent: id })));
  state.tenant = ids.includes(keep) ? keep : (ids[0] || "");
  sel.value = state.tenant;
  document.querySelectorAll(".current-tenant").forEach((e) => { e.textContent = state.tenant; });
  return ids;
}

$("#tenant-select").addEventListener("change", (ev) => {
  state.tenant = ev.target.value;
  document.querySelectorAll(".current-tenant").forEach((e) => { e.textContent = state.tenant; });
  stopInspect();
  checkAnalytics();
  show(state.view);
});

// ---- overview: live figures over SSE, plotted with uPlot

// LivePlot is a time series plot whose series appear as they are first
// seen (a new protocol, tenant or drop reason).
class LivePlot {
  constructor(id, title, unit) {
    this.box = document.getElementById(id);
    this.title = title;
    this.unit = unit;
    this.names = [];
    this.xs = [];
    this.ys = [];
    this.plot = null;
  }
  push(t, values) {
    let rebuild = !this.plot;
    for (const name of Object.keys(values)) {
      if (!this.names.includes(name)) {
        this.names.push(name);
        this.ys.push(this.xs.map(() => null));
        rebuild = true;
      }
    }
    this.xs.push(t / 1000);
    this.names.forEach((n, i) => this.ys[i].push(n in values ? values[n] : null));
    if (this.xs.length > WINDOW) {
      this.xs.shift();
      this.ys.forEach((y) => y.shift());
    }
    if (rebuild) this.build(); else this.plot.setData([this.xs, ...this.ys]);
  }
  build() {
    if (this.plot) this.plot.destroy();
    const unit = this.unit;
    const colors = ["#1f6feb", "#e8590c", "#2e7d32", "#9c36b5", "#c0392b", "#0b7285", "#5c940d", "#862e9c"];
    this.plot = new uPlot({
      title: this.title,
      width: this.width(),
      height: 200,
      series: [{}, ...this.names.map((n, i) => ({ label: n, stroke: colors[i % colors.length], width: 1.5, spanGaps: false,
        value: (u, v) => (v === null || v === undefined ? "–" : fmt(v) + unit) }))],
      axes: [{}, { size: 60, values: (u, vs) => vs.map((v) => fmt(v)) }],
      scales: {
        // One sample has no time range of its own (uPlot would span years):
        // a minute around it.
        x: { time: true, range: (u, min, max) => {
          const xs = u.data[0];
          return xs.length > 0 && xs[0] === xs[xs.length - 1] ? [xs[0] - 60, xs[0] + 60] : [min, max];
        } },
        y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
      },
      legend: { live: true },
    }, [this.xs, ...this.ys], this.box);
  }
  width() { return Math.max(300, this.box.clientWidth - 16); }
  resize() { if (this.plot) this.plot.setSize({ width: this.width(), height: 200 }); }
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(Math.abs(v) < 10 ? 2 : 1);
}

window.addEventListener("resize", () => Object.values(state.plots).forEach((p) => p.resize()));

function plots() {
  if (!state.plots.protocol) {
    state.plots = {
      protocol: new LivePlot("plot-protocol", "Connections by protocol", ""),
      tenant: new LivePlot("plot-tenant", "Connections by tenant", ""),
      messages: new LivePlot("plot-messages", "Messages per second", "/s"),
      tenantMessages: new LivePlot("plot-tenant-messages", "Messages published per second, by tenant", "/s"),
      drops: new LivePlot("plot-drops", "Drops per second, by reason", "/s"),
      queue: new LivePlot("plot-queue", "Queued deliveries", ""),
      store: new LivePlot("plot-store", "Store write latency", " ms"),
    };
  }
  return state.plots;
}

// largest keeps the largest MAX_TENANT_SERIES - 1 entries of values and adds
// up the rest as "(others)": a plot of thousands of tenants says nothing.
// Ferry itself sends the busiest tenants only, the rest as "(others)".
function largest(values) {
  const rest = values[OTHERS] || 0;
  const entries = Object.entries(values).filter(([k]) => k !== OTHERS).sort((a, b) => b[1] - a[1]);
  if (entries.length + (OTHERS in values ? 1 : 0) <= MAX_TENANT_SERIES) return values;
  const out = Object.fromEntries(entries.slice(0, MAX_TENANT_SERIES - 1));
  out[OTHERS] = entries.slice(MAX_TENANT_SERIES - 1).reduce((sum, [, n]) => sum + n, rest);
  return out;
}

// zeroFill makes a series seen before and gone now a zero, not a gap.
function zeroFill(plot, values) {
  for (const n of plot.names) if (!(n in values)) values[n] = 0;
  return values;
}

// tenantSums adds up the figures of the tenants a user sees, for users of
// some tenants only, who get no hub-wide figures.
function tenantSums(tenants) {
  const h = { in_per_s: 0, out_per_s: 0, drops_per_s: {}, queued: 0, sessions: 0, subscriptions: 0, retained: 0 };
  for (const t of tenants) {
    h.in_per_s += t.published_per_s;
    h.out_per_s += t.sent_per_s;
    for (const [r, v] of Object.entries(t.drops_per_s)) h.drops_per_s[r] = (h.drops_per_s[r] || 0) + v;
    h.queued += t.queued;
    h.sessions += t.sessions;
    h.subscriptions += t.subscriptions;
    h.retained += t.retained;
  }
  return h;
}

function sample(s) {
  const p = plots();
  const byProto = {}, byTenant = {}, published = {};
  let total = 0;
  for (const c of s.conns || []) {
    byProto[c.protocol] = (byProto[c.protocol] || 0) + c.n;
    byTenant[c.tenant] = (byTenant[c.tenant] || 0) + c.n;
    total += c.n;
  }
  for (const t of s.tenants || []) published[t.tenant] = t.published_per_s;
  zeroFill(p.protocol, byProto);
  if (Object.keys(byProto).length === 0) byProto.mqtt = 0;
  p.protocol.push(s.t, byProto);
  p.tenant.push(s.t, zeroFill(p.tenant, largest(byTenant)));
  p.tenantMessages.push(s.t, zeroFill(p.tenantMessages, largest(published)));
  $("#stat-connections").textContent = String(total);
  // Users of every tenant get the hub's own figures: the messages clients
  // sent and received, and the store. Others get their tenants' sums.
  const h = s.hub || tenantSums(s.tenants || []);
  const [inName, outName] = s.hub ? ["in", "out"] : ["published", "sent"];
  p.messages.push(s.t, { [inName]: h.in_per_s, [outName]: h.out_per_s });
  p.drops.push(s.t, h.drops_per_s || {});
  p.queue.push(s.t, { queued: h.queued });
  if (s.hub) p.store.push(s.t, { mean: h.store_mean_ms, p99: h.store_p99_ms });
  $("#label-in").textContent = s.hub ? "messages in/s" : "published/s";
  $("#label-out").textContent = s.hub ? "messages out/s" : "sent/s";
  $("#stat-in").textContent = fmt(h.in_per_s);
  $("#stat-out").textContent = fmt(h.out_per_s);
  $("#stat-queued").textContent = fmt(h.queued);
  $("#stat-sessions").textContent = fmt(h.sessions);
  $("#stat-subscriptions").textContent = fmt(h.subscriptions);
  $("#stat-retained").textContent = fmt(h.retained);
}

function startLive() {
  if (state.live) state.live.close();
  const es = new EventSource(API + "/live");
  es.addEventListener("history", (ev) => JSON.parse(ev.data).forEach(sample));
  es.addEventListener("sample", (ev) => sample(JSON.parse(ev.data)));
  es.onerror = () => {
    // EventSource reconnects by itself; a lost login shows as 401 on /me.
    if (es.readyState === EventSource.CLOSED) call("GET", "/me").then(startLive, () => {});
  };
  state.live = es;
}

function stopStreams() {
  clearInterval(state.refresh);
  if (state.live) { state.live.close(); state.live = null; }
  stopInspect();
  stopAnalytics();
}

// ---- clients and sessions

async function loadClients() {
  const q = $("#clients-search").value.trim();
  const mine = turn("clients");
  const res = await call("GET", "/clients?q=" + enc(q));
  if (!current("clients", mine)) return;
  $("#clients-total").textContent = res.total + " connected";
  $("#clients-table tbody").replaceChildren(...res.clients.map((c) => el("tr", { "data-client": c.client_id },
    el("td", {}, c.tenant), el("td", { class: "mono" }, c.client_id), el("td", {}, c.device || "–"),
    el("td", {}, c.protocol + " " + c.version), el("td", { class: "mono" }, c.remote_addr),
    el("td", {}, c.num_subscriptions), el("td", {}, c.inflight), el("td", {}, c.queued + c.session_queued),
    el("td", {}, el("button", { onclick: () => clientDetails(c.tenant, c.client_id) }, "Details")))));
}

async function clientDetails(tenant, id) {
  const c = await call("GET", "/clients/" + enc(tenant) + "/" + enc(id));
  const box = $("#client-details");
  const rows = [["tenant", c.tenant], ["client id", c.client_id], ["device", c.device || "–"], ["user", c.user || "–"],
    ["protocol", c.protocol + " " + c.version + (c.tls ? " over TLS" : "")], ["address", c.remote_addr],
    ["connected", c.connected_at ? new Date(c.connected_at).toLocaleString() : "–"],
    ["session", (c.durable ? "persistent" : "clean") + ", " + c.session_queued + " queued in the session"],
    ["in flight", c.inflight], ["queued for the socket", c.queued], ["dropped (too large)", c.dropped]];
  box.replaceChildren(
    el("h2", {}, "Client " + c.client_id),
    el("table", {}, el("tbody", {}, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))))),
    el("h3", {}, "Subscriptions"),
    el("ul", {}, ...(c.subscriptions || []).map((s) => el("li", { class: "mono" }, s.filter + "  (QoS " + s.qos + ")"))),
    armed(el("button", { class: "danger", id: "client-kick" }, "Kick"), "disconnect " + c.client_id, async () => {
      await call("POST", "/clients/" + enc(tenant) + "/" + enc(id) + "/kick");
      box.hidden = true;
      await loadClients();
    }));
  box.hidden = false;
}

$("#clients-refresh").addEventListener("click", () => loadClients().catch((e) => flash(e.message)));
$("#clients-search").addEventListener("input", () => loadClients().catch((e) => flash(e.message)));

async function loadSessions() {
  const mine = turn("sessions");
  const res = await call("GET", "/sessions?q=" + enc($("#sessions-search").value.trim()));
  if (!current("sessions", mine)) return;
  $("#sessions-total").textContent = res.total + " sessions";
  $("#sessions-table tbody").replaceChildren(...res.sessions.map((s) => el("tr", {},
    el("td", {}, s.tenant), el("td", { class: "mono" }, s.client_id), el("td", {}, s.online ? "yes" : "no"),
    el("td", {}, s.durable ? "yes" : "no"), el("td", {}, s.queued),
    el("td", { class: "mono" }, s.subscriptions.map((x) => x.filter + " q" + x.qos).join(", ") || "–"))));
}
$("#sessions-refresh").addEventListener("click", () => loadSessions().catch((e) => flash(e.message)));
$("#sessions-search").addEventListener("input", () => loadSessions().catch((e) => flash(e.message)));

// ---- retained messages

function payloadText(m) {
  if (m.payload_base64) return "base64: " + m.payload_base64;
  return (m.payload || "") + (m.truncated ? " …" : "");
}

async function loadRetained() {
  const mine = turn("retained");
  const res = await call("GET", "/retained?tenant=" + enc(state.tenant) + "&filter=" + enc($("#retained-filter").value));
  if (!current("retained", mine)) return;
  $("#retained-total").textContent = res.retained.length + (res.more ? "+" : "") + " retained in " + res.tenant;
  $("#retained-table tbody").replaceChildren(...res.retained.map((m) => el("tr", { "data-topic": m.topic },
    el("td", { class: "mono" }, m.topic), el("td", {}, m.qos), el("td", {}, m.size),
    el("td", { class: "payload mono" }, payloadText(m)),
    el("td", {}, armed(el("button", { class: "danger delete" }, "Delete"), "delete", async () => {
      await call("DELETE", "/retained?tenant=" + enc(state.tenant) + "&topic=" + enc(m.topic));
      await loadRetained();
    })))));
}
$("#retained-refresh").addEventListener("click", () => loadRetained().catch((e) => flash(e.message)));

// ---- registry: tenants, devices, credentials over the /v1 API

const enabled = (o) => o.enabled !== false;

function stateCell(on) {
  return el("td", { class: on ? "state-enabled" : "state-disabled" }, on ? "enabled" : "disabled");
}

async function loadRegistry() {
  let tenants = [];
  const mine = turn("tenants");
  try { tenants = (await call("GET", "/v1/tenants?pageSize=200")).result || []; }
  catch (e) { if (e.status !== 404) throw e; }
  if (!current("tenants", mine)) return;
  $("#tenants-table tbody").replaceChildren(...tenants.map((t) => el("tr", { "data-tenant": t.id },
    el("td", {}, t.id), stateCell(enabled(t)),
    el("td", {}, el("button", { class: "toggle", onclick: () => toggle("/v1/tenants/" + enc(t.id)).then(loadRegistry, (e) => flash(e.message)) },
      enabled(t) ? "Disable" : "Enable")))));
  await loadDevices();
}

async function loadDevices() {
  let devices = [];
  const mine = turn("devices");
  if (state.tenant) {
    try { devices = (await call("GET", "/v1/devices/" + enc(state.tenant) + "?pageSize=200")).result || []; }
    catch (e) { if (e.status !== 404) throw e; }
  }
  if (!current("devices", mine)) return;
  $("#devices-table tbody").replaceChildren(...devices.map((d) => el("tr", { "data-device": d.id },
    el("td", { class: "mono" }, d.id), stateCell(enabled(d)),
    el("td", {},
      el("button", { class: "toggle", onclick: () => toggle("/v1/devices/" + enc(state.tenant) + "/" + enc(d.id)).then(loadDevices, (e) => flash(e.message)) },
        enabled(d) ? "Disable" : "Enable"),
      " ",
      el("button", { onclick: () => showCredentials(d.id) }, "Credentials")))));
}

// toggle flips the enabled flag of a tenant or device: read, change, write
// back with If-Match so that a concurrent change is not overwritten.
async function toggle(path) {
  const resp = await fetch(API + path, { credentials: "same-origin" });
  if (!resp.ok) throw new APIError(resp.status, "reading " + path + ": " + resp.statusText);
  const etag = resp.headers.get("ETag");
  const obj = await resp.json();
  obj.enabled = !enabled(obj);
  const headers = { "Content-Type": "application/json", "X-CSRF-Token": state.me.csrf };
  if (etag) headers["If-Match"] = etag;
  const put = await fetch(API + path, { method: "PUT", headers, credentials: "same-origin", body: JSON.stringify(obj) });
  if (!put.ok) {
    const err = await put.json().catch(() => ({}));
    throw new APIError(put.status, err.error || put.statusText);
  }
}

async function showCredentials(device) {
  $("#cred-device").value = device;
  try {
    const creds = await call("GET", "/v1/credentials/" + enc(state.tenant) + "/" + enc(device));
    $("#cred-list").textContent = JSON.stringify(creds, null, 2);
  } catch (e) {
    $("#cred-list").textContent = e.status === 404 ? "no credentials" : e.message;
  }
}

$("#tenant-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const id = $("#tenant-new-id").value.trim();
  try {
    await call("POST", "/v1/tenants/" + enc(id), {});
    $("#tenant-new-id").value = "";
    await loadTenants();
    state.tenant = id;
    $("#tenant-select").value = id;
    document.querySelectorAll(".current-tenant").forEach((e) => { e.textContent = id; });
    await loadRegistry();
  } catch (e) { flash(e.message); }
});

$("#device-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const id = $("#device-new-id").value.trim();
  try {
    await call("POST", "/v1/devices/" + enc(state.tenant) + "/" + enc(id), {});
    $("#device-new-id").value = "";
    $("#cred-device").value = id;
    await loadDevices();
  } catch (e) { flash(e.message); }
});

$("#cred-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const device = $("#cred-device").value.trim();
  const body = [{ type: "hashed-password", "auth-id": $("#cred-authid").value.trim(),
    secrets: [{ "pwd-plain": $("#cred-password").value }] }];
  try {
    await call("PUT", "/v1/credentials/" + enc(state.tenant) + "/" + enc(device), body);
    $("#cred-password").value = "";
    await showCredentials(device);
  } catch (e) { flash(e.message); }
});

// ---- topic inspector

$("#inspect-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  stopInspect();
  const filter = $("#inspect-filter").value;
  const es = new EventSource(API + "/inspect?tenant=" + enc(state.tenant) + "&filter=" + enc(filter));
  const list = $("#inspect-messages");
  $("#inspect-state").textContent = "connecting…";
  es.addEventListener("subscribed", (e) => {
    const s = JSON.parse(e.data);
    $("#inspect-state").textContent = "watching " + s.filter + " in " + s.tenant;
  });
  es.addEventListener("message", (e) => {
    const m = JSON.parse(e.data);
    list.prepend(el("li", {},
      el("span", { class: "topic mono" }, m.topic),
      el("span", { class: "meta" }, new Date(m.time).toLocaleTimeString() + " · QoS " + m.qos + (m.retain ? " · retained" : "") + " · " + m.size + " B"),
      el("span", { class: "body mono" }, payloadText(m))));
    while (list.children.length > 500) list.lastChild.remove();
  });
  es.addEventListener("dropped", (e) => { $("#inspect-dropped").textContent = String(JSON.parse(e.data).dropped); });
  es.addEventListener("retained_more", (e) => {
    $("#inspect-state").textContent += " (" + JSON.parse(e.data).more + " more retained messages not shown)";
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) $("#inspect-state").textContent = "stopped (refused: check the filter)";
  };
  state.inspect = es;
  $("#inspect-stop").disabled = false;
});

function stopInspect() {
  if (state.inspect) { state.inspect.close(); state.inspect = null; $("#inspect-state").textContent = "stopped"; }
  $("#inspect-stop").disabled = true;
}
$("#inspect-stop").addEventListener("click", stopInspect);
$("#inspect-clear").addEventListener("click", () => { $("#inspect-messages").replaceChildren(); $("#inspect-dropped").textContent = "0"; });

// ---- analytics (issue #17's API, when this node has it)

const analyticsBase = () => "/v1/analytics/" + enc(state.tenant) + "/queries";

function listOf(res, key) {
  if (Array.isArray(res)) return res;
  return (res && (res[key] || res.result)) || [];
}

// checkAnalytics shows the panel when the node answers for the tenant's
// queries and hides it on 404 (no analytics here).
async function checkAnalytics() {
  try {
    const qs = listOf(await call("GET", analyticsBase()), "queries");
    $("#nav-analytics").hidden = qs.length === 0;
    return qs;
  } catch (e) {
    $("#nav-analytics").hidden = true;
    return [];
  }
}

async function loadQueries() {
  const qs = await checkAnalytics();
  $("#analytics-query").replaceChildren(...qs.map((q) => {
    const name = typeof q === "string" ? q : q.name;
    return el("option", { value: name, textContent: name });
  }));
}

function stopAnalytics() {
  if (state.analytics) { state.analytics.close(); state.analytics = null; }
}

const rowMeta = ["query", "window_start", "window_end", "revision", "final", "late", "dropped", "parse_errors", "id"];

// keyOf is the key of an analytics row: its string fields that are not
// the row's bookkeeping (the device, or what the query groups by).
function keyOf(r) {
  return Object.entries(r).filter(([k, v]) => typeof v === "string" && !rowMeta.includes(k)).map(([, v]) => v).join("/");
}

function analyticsRows(rows, key) {
  // /latest and the stream's first rows may be the same: a row is its id
  // and revision.
  const seen = state.analyticsSeen;
  rows = rows.filter((r) => (!key || Object.values(r).includes(key)) && !seen.has(r.id + "/" + r.revision));
  rows.forEach((r) => seen.add(r.id + "/" + r.revision));
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]);
  if ($("#analytics-table thead").children.length === 0) {
    $("#analytics-table thead").replaceChildren(el("tr", {}, ...cols.map((c) => el("th", {}, c))));
  }
  const body = $("#analytics-table tbody");
  for (const r of rows) {
    body.prepend(el("tr", {}, ...cols.map((c) => el("td", { class: "mono" }, typeof r[c] === "object" ? JSON.stringify(r[c]) : r[c]))));
  }
  while (body.children.length > 200) body.lastChild.remove();
  const plot = state.analyticsPlot || (state.analyticsPlot = new LivePlot("plot-analytics", "Aggregates per window", ""));
  for (const r of rows) {
    const values = {};
    const prefix = key ? "" : keyOf(r) + " ";
    for (const [k, v] of Object.entries(r)) if (typeof v === "number" && !rowMeta.includes(k)) values[prefix + k] = v;
    const t = Date.parse(r.window_end || r.window_start) || Date.now();
    plot.push(t, values);
  }
}

$("#analytics-show").addEventListener("click", async () => {
  stopAnalytics();
  const name = $("#analytics-query").value;
  if (!name) return;
  const key = $("#analytics-key").value.trim();
  const base = analyticsBase() + "/" + enc(name);
  $("#analytics-table thead").replaceChildren();
  $("#analytics-table tbody").replaceChildren();
  if (state.analyticsPlot && state.analyticsPlot.plot) state.analyticsPlot.plot.destroy();
  state.analyticsPlot = null;
  state.analyticsSeen = new Set();
  try {
    // latest answers one row for a key, a list for every key.
    const res = await call("GET", base + "/latest" + (key ? "?key=" + enc(key) : ""));
    analyticsRows(Array.isArray(res) ? res : [res], key);
  } catch (e) {
    if (e.status !== 404) { flash(e.message); return; } // 404: no row yet
  }
  // The stream sends every key's rows as "row" events, the latest of each first.
  const es = new EventSource(API + base + "/stream");
  es.addEventListener("row", (e) => analyticsRows([JSON.parse(e.data)], key));
  state.analytics = es;
});

start();
