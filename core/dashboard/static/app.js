// dockyard dashboard: vanilla JS reading the daemon's own Docker Engine API (same origin).
"use strict";

const STATS_EVERY = 1500;      // ms between stats samples of each running container
const SPARK_POINTS = 30;       // samples kept per sparkline
const LOG_LINES = 2000;        // lines kept in the log panel
const EVENTS_KEPT = 200;

const state = {
  view: "containers",
  containers: [], images: [], networks: [], volumes: [],
  stats: new Map(),            // container id -> {prev, cpu: [], mem: [], limit}
  selected: null,              // container id whose log is followed
  logAbort: null,
  info: null, version: null,
};

// ---- small helpers ---------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const $ = (sel) => document.querySelector(sel);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shortId = (id) => (id || "").replace(/^sha256:/, "").slice(0, 12);
const cname = (c) => ((c.Names && c.Names[0]) || shortId(c.Id)).replace(/^\//, "");

function bytes(n) {              // docker's units: powers of 1000
  if (n === undefined || n === null || isNaN(n)) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n >= 100 ? 0 : 1)) + " " + units[i];
}

function ago(seconds) {
  if (!seconds) return "–";
  const d = Date.now() / 1000 - seconds;
  if (d < 60) return "just now";
  const steps = [[60, "minute"], [3600, "hour"], [86400, "day"], [604800, "week"], [2629800, "month"], [31557600, "year"]];
  let unit = steps[0];
  for (const s of steps) if (d >= s[0]) unit = s;
  const n = Math.floor(d / unit[0]);
  return `${n} ${unit[1]}${n === 1 ? "" : "s"} ago`;
}
const isoSeconds = (iso) => (iso ? Date.parse(iso) / 1000 : 0);

async function api(path, options) {
  const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  if (!resp.ok) {
    let msg = `${resp.status} ${resp.statusText}`;
    try { msg = (await resp.json()).message || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return resp;
}
const getJSON = async (path) => (await api(path)).json();

function toast(message, ok) {
  const t = $("#toast");
  t.textContent = message;
  t.className = "toast" + (ok ? " ok" : "");
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

// newline-delimited text from a streaming response
async function readLines(resp, onLine, signal) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done || (signal && signal.aborted)) return;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) onLine(line);
    }
  }
}

// ---- confirmation dialog ---------------------------------------------------------------------
function confirmAction(title, text, okLabel) {
  return new Promise((resolve) => {
    const modal = $("#confirm");
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    const ok = $("#confirm-ok"), cancel = $("#confirm-cancel");
    ok.textContent = okLabel;
    const done = (answer) => {
      modal.hidden = true;
      ok.onclick = cancel.onclick = modal.onclick = document.onkeydown = null;
      resolve(answer);
    };
    ok.onclick = () => done(true);
    cancel.onclick = () => done(false);
    modal.onclick = (e) => { if (e.target === modal) done(false); };
    document.onkeydown = (e) => { if (e.key === "Escape") done(false); };
    modal.hidden = false;
    ok.focus();
  });
}

// ---- sparklines ------------------------------------------------------------------------------
const SVG = "http://www.w3.org/2000/svg";
function sparkline(kind, values, max, label) {
  const wrap = el("div", { class: `spark ${kind}` }, el("span", { class: "k", text: kind.toUpperCase() }));
  if (!values.length) {
    wrap.append(el("span", { class: "none", text: "sampling…" }));
    return wrap;
  }
  // the newest sample at the right; the first dozen spread out, later ones narrow the step
  const w = 96, h = 26, n = Math.max(12, values.length);
  const top = Math.max(max || 0, ...values) * 1.15 || 1;  // headroom: a flat line is not "full"
  const pts = values.map((v, i) => {
    const x = w - (values.length - 1 - i) * (w / (n - 1));
    const y = h - 2 - (v / top) * (h - 4);
    return [x.toFixed(1), y.toFixed(1)];
  });
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("data-points", String(values.length));
  svg.setAttribute("aria-label", `${kind} history`);
  const area = document.createElementNS(SVG, "polygon");
  area.setAttribute("class", "area");
  area.setAttribute("points", `${pts[0][0]},${h} ` + pts.map((p) => p.join(",")).join(" ") + ` ${pts[pts.length - 1][0]},${h}`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", pts.map((p) => p.join(",")).join(" "));
  svg.append(area, line);
  wrap.append(svg, el("span", { class: "v", text: label }));
  return wrap;
}

// ---- containers ------------------------------------------------------------------------------
function health(c) {
  const m = /\((healthy|unhealthy|health: starting)\)/.exec(c.Status || "");
  if (!m) return null;
  const word = m[1] === "health: starting" ? "starting" : m[1];
  return el("span", { class: `pill ${word}`, text: word });
}

function ports(c) {
  const seen = new Set();
  return (c.Ports || []).filter((p) => {
    const key = `${p.PublicPort}-${p.PrivatePort}-${p.Type}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  }).map((p) => el("span", { class: "port mono",
    text: p.PublicPort ? `${p.IP || "0.0.0.0"}:${p.PublicPort}→${p.PrivatePort}/${p.Type}` : `${p.PrivatePort}/${p.Type}` }));
}

function usage(c) {
  const s = state.stats.get(c.Id);
  if (c.State !== "running") return el("span", { class: "sub", text: "–" });
  const cpu = s ? s.cpu : [], mem = s ? s.mem : [];
  const cpuLabel = cpu.length ? `${cpu[cpu.length - 1].toFixed(1)} %` : "";
  const memLabel = mem.length ? bytes(mem[mem.length - 1]) : "";
  // CPU is drawn against at least 5 % so that an idle container's line stays low
  return el("div", { class: "usage" }, sparkline("cpu", cpu, 5, cpuLabel), sparkline("mem", mem, 0, memLabel));
}

function actionButtons(c) {
  const running = c.State === "running" || c.State === "restarting";
  const paused = c.State === "paused";
  const b = (action, label) => el("button", {
    type: "button", class: `btn ${action}`, "data-action": action,
    title: `${label} ${cname(c)}`, onclick: (e) => { e.stopPropagation(); act(c, action); } }, label);
  // only what applies to the container as it is
  return [running || paused ? b("stop", "Stop") : b("start", "Start"), b("restart", "Restart"), b("remove", "Remove")];
}

function renderContainers() {
  const tbody = $("#containers tbody");
  const all = $("#show-all").checked;
  const list = state.containers.filter((c) => all || c.State === "running" || c.State === "paused");
  tbody.replaceChildren(...list.map((c) => {
    const row = el("tr", { class: "clickable" + (c.Id === state.selected ? " selected" : ""),
      "data-id": c.Id, "data-name": cname(c), "data-state": c.State, onclick: () => selectContainer(c.Id) },
      el("td", { class: "dot-col" }, el("span", { class: `dot ${c.State}` })),
      el("td", {}, el("div", { class: "name", text: cname(c) }), el("div", { class: "sub mono", text: shortId(c.Id) })),
      el("td", { class: "image" }, el("div", { class: "clip", text: c.Image, title: c.Image }),
        el("div", { class: "sub mono clip", text: c.Command || "", title: c.Command || "" })),
      el("td", { class: "state" }, el("span", { class: `pill ${c.State}`, text: c.State }), " ", health(c),
        el("div", { class: "status", text: (c.Status || "").replace(/ \((healthy|unhealthy|health: starting)\)$/, "") })),
      el("td", {}, ports(c)),
      el("td", { class: "usage-col" }, usage(c)),
      el("td", { class: "actions-col" }, actionButtons(c)));
    return row;
  }));
  $("#containers-empty").hidden = list.length > 0;
  const running = state.containers.filter((c) => c.State === "running").length;
  $("#n-containers").textContent = state.containers.length ? `${running}/${state.containers.length}` : "";
  renderSummary();
}

async function refreshContainers() {
  try {
    state.containers = await getJSON("/containers/json?all=1");
  } catch (e) { return; }
  const ids = new Set(state.containers.map((c) => c.Id));
  for (const id of state.stats.keys()) if (!ids.has(id)) state.stats.delete(id);
  if (state.selected && !ids.has(state.selected)) closeLogs();
  renderContainers();
  updateLogState();
}

function sampleStats(c, s) {
  let rec = state.stats.get(c.Id);
  if (!rec) { rec = { prev: null, cpu: [], mem: [] }; state.stats.set(c.Id, rec); }
  const cs = s.cpu_stats || {}, prev = rec.prev;
  if (prev && cs.cpu_usage && prev.cpu_usage) {
    const dCpu = cs.cpu_usage.total_usage - prev.cpu_usage.total_usage;
    const dSys = (cs.system_cpu_usage || 0) - (prev.system_cpu_usage || 0);
    const cpus = cs.online_cpus || 1;
    rec.cpu.push(dSys > 0 && dCpu >= 0 ? (dCpu / dSys) * cpus * 100 : 0);
  }
  rec.prev = cs;
  const ms = s.memory_stats || {};
  if (ms.usage !== undefined) {   // as the docker CLI: usage less the inactive page cache
    const st = ms.stats || {};
    const cache = st.total_inactive_file ?? st.inactive_file ?? 0;
    rec.mem.push(Math.max(0, ms.usage - (cache < ms.usage ? cache : 0)));
  }
  for (const k of ["cpu", "mem"]) if (rec[k].length > SPARK_POINTS) rec[k].splice(0, rec[k].length - SPARK_POINTS);
}

async function pollStats() {
  for (;;) {
    const running = state.containers.filter((c) => c.State === "running");
    if (state.view === "containers" && running.length) {
      await Promise.all(running.map(async (c) => {
        try {
          sampleStats(c, await getJSON(`/containers/${c.Id}/stats?stream=false&one-shot=true`));
        } catch (e) { /* it stopped meanwhile */ }
      }));
      for (const c of running) {
        const row = document.querySelector(`#containers tr[data-id="${c.Id}"]`);
        if (!row) continue;
        row.querySelector("td.usage-col").replaceChildren(usage(c));
      }
    }
    await sleep(STATS_EVERY);
  }
}

const ACTIONS = {
  start: { method: "POST", path: (id) => `/containers/${id}/start`, done: "started" },
  stop: { method: "POST", path: (id) => `/containers/${id}/stop`, done: "stopped",
    confirm: (n) => [`Stop ${n}?`, `${n} gets its stop signal, and SIGKILL if it has not exited after its stop timeout.`] },
  restart: { method: "POST", path: (id) => `/containers/${id}/restart`, done: "restarted",
    confirm: (n) => [`Restart ${n}?`, `${n} is stopped (if it runs) and started again.`] },
  remove: { method: "DELETE", path: (id) => `/containers/${id}?force=1`, done: "removed",
    confirm: (n, c) => [`Remove ${n}?`, (c.State === "running" ? `${n} is running: it is killed, then ` : `${n} is `) +
      "deleted with its writable layer. This cannot be undone."] },
};

async function act(c, action) {
  const a = ACTIONS[action], n = cname(c);
  if (a.confirm) {
    const [title, text] = a.confirm(n, c);
    if (!await confirmAction(title, text, action[0].toUpperCase() + action.slice(1))) return;
  }
  try {
    await api(a.path(c.Id), { method: a.method });
    toast(`${n} ${a.done}`, true);
  } catch (e) {
    toast(`${action} ${n}: ${e.message}`);
  }
  refreshContainers();
}

// ---- logs ------------------------------------------------------------------------------------
function appendLog(text, stream) {
  const pre = $("#logs");
  const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  const showTs = $("#logs-timestamps").checked;
  for (const raw of text.split("\n")) {
    if (raw === "") continue;
    let line = raw, ts = "";
    const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (.*)$/s.exec(raw);
    if (m) { ts = m[1].replace(/\.\d+Z$/, "Z").replace("T", " ").replace("Z", ""); line = m[2]; }
    pre.append(el("div", { class: stream === 2 ? "err" : null }, showTs && ts ? el("span", { class: "t", text: ts }) : null, line));
  }
  while (pre.childElementCount > LOG_LINES) pre.firstElementChild.remove();
  if (stick) pre.scrollTop = pre.scrollHeight;
}

function logNote(text) {
  $("#logs").append(el("div", { class: "note", text }));
}

async function followLogs(id) {
  if (state.logAbort) state.logAbort.abort();
  const ctl = new AbortController();
  state.logAbort = ctl;
  $("#logs").replaceChildren();
  let tty = false;
  try {
    tty = !!(await getJSON(`/containers/${id}/json`)).Config.Tty;
    const resp = await api(`/containers/${id}/logs?stdout=1&stderr=1&follow=1&timestamps=1&tail=500`, { signal: ctl.signal });
    const reader = resp.body.getReader();
    const decoder = [new TextDecoder(), new TextDecoder(), new TextDecoder()];
    let buf = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (tty) { appendLog(decoder[1].decode(value, { stream: true }), 1); continue; }
      const joined = new Uint8Array(buf.length + value.length);
      joined.set(buf); joined.set(value, buf.length);
      buf = joined;
      while (buf.length >= 8) {   // multiplexed frames: [stream, 0, 0, 0, size (big endian)]
        const size = new DataView(buf.buffer, buf.byteOffset, 8).getUint32(4);
        if (buf.length < 8 + size) break;
        const stream = buf[0] === 2 ? 2 : 1;
        appendLog(decoder[stream].decode(buf.subarray(8, 8 + size), { stream: true }), stream);
        buf = buf.slice(8 + size);
      }
    }
    if (state.selected === id) logNote("— the log ended (the container stopped) —");
  } catch (e) {
    if (e.name !== "AbortError") logNote(`— ${e.message} —`);
  }
  if (state.logAbort === ctl) { state.logAbort = null; updateLogState(); }
}

function updateLogState() {
  if (!state.selected) return;
  const c = state.containers.find((x) => x.Id === state.selected);
  const pill = $("#logs-state");
  const following = !!state.logAbort;
  pill.textContent = following ? "following" : (c ? c.State : "gone");
  pill.className = "pill " + (following ? "following" : (c ? c.State : ""));
}

function selectContainer(id) {
  const c = state.containers.find((x) => x.Id === id);
  if (!c) return;
  state.selected = id;
  $("#logs-panel").hidden = false;
  $("#logs-name").textContent = cname(c);
  for (const row of document.querySelectorAll("#containers tbody tr")) row.classList.toggle("selected", row.dataset.id === id);
  followLogs(id).then(updateLogState);
  updateLogState();
}

function closeLogs() {
  if (state.logAbort) state.logAbort.abort();
  state.logAbort = null;
  state.selected = null;
  $("#logs-panel").hidden = true;
  for (const row of document.querySelectorAll("#containers tbody tr.selected")) row.classList.remove("selected");
}

// ---- images, networks, volumes ---------------------------------------------------------------
async function refreshImages() {
  try { state.images = await getJSON("/images/json"); } catch (e) { return; }
  const used = new Map();
  for (const c of state.containers) used.set(c.ImageID, (used.get(c.ImageID) || 0) + 1);
  $("#images tbody").replaceChildren(...state.images.map((img) => {
    const tags = (img.RepoTags || []).filter((t) => t !== "<none>:<none>");
    return el("tr", { class: "clickable", onclick: () => showLayers(img, tags[0] || shortId(img.Id)) },
      el("td", {}, tags.length ? tags.map((t) => el("span", { class: "chip", text: t })) : el("span", { class: "sub", text: "<none>" })),
      el("td", { class: "mono", text: shortId(img.Id) }),
      el("td", { text: ago(img.Created) }),
      el("td", { class: "num", text: bytes(img.Size) }),
      el("td", { class: "num", text: String(used.get(img.Id) || 0) }));
  }));
  $("#n-images").textContent = state.images.length || "";
}

async function showLayers(img, name) {
  const [hist, inspect] = await Promise.all([getJSON(`/images/${img.Id}/history`), getJSON(`/images/${img.Id}/json`)]);
  const layers = ((inspect.RootFS || {}).Layers || []).length;
  $("#layers-name").textContent = `${name} — ${layers} layer${layers === 1 ? "" : "s"}, ${bytes(img.Size)}`;
  $("#layers tbody").replaceChildren(...hist.slice().reverse().map((h, i) => el("tr", {},
    el("td", { class: "sub", text: String(i + 1) }),
    el("td", { class: "mono", text: (h.CreatedBy || "").replace(/^\/bin\/sh -c #\(nop\)\s*/, "").slice(0, 140) || "–" }),
    el("td", { text: ago(h.Created) }),
    el("td", { class: "num", text: bytes(h.Size) }))));
  $("#layers-panel").hidden = false;
}

async function refreshNetworks() {
  try { state.networks = await getJSON("/networks"); } catch (e) { return; }
  $("#networks tbody").replaceChildren(...state.networks.map((n) => {
    const cfg = ((n.IPAM || {}).Config || [])[0] || {};
    return el("tr", {},
      el("td", { class: "name", text: n.Name }), el("td", { class: "mono", text: shortId(n.Id) }),
      el("td", { text: n.Driver }), el("td", { class: "mono", text: cfg.Subnet || "–" }),
      el("td", { class: "mono", text: cfg.Gateway || "–" }), el("td", { text: ago(isoSeconds(n.Created)) }));
  }));
  $("#n-networks").textContent = state.networks.length || "";
}

async function refreshVolumes() {
  try { state.volumes = (await getJSON("/volumes")).Volumes || []; } catch (e) { return; }
  const users = new Map();
  for (const c of state.containers) for (const m of c.Mounts || []) if (m.Name) {
    users.set(m.Name, (users.get(m.Name) || []).concat(cname(c)));
  }
  $("#volumes tbody").replaceChildren(...state.volumes.map((v) => el("tr", {},
    el("td", { class: "name", text: v.Name }), el("td", { text: v.Driver }),
    el("td", {}, (users.get(v.Name) || []).map((n) => el("span", { class: "chip", text: n }))),
    el("td", { class: "mono sub", text: v.Mountpoint }), el("td", { text: ago(isoSeconds(v.CreatedAt)) }))));
  $("#n-volumes").textContent = state.volumes.length || "";
}

// ---- engine ----------------------------------------------------------------------------------
function card(title, rows, badge) {
  return el("div", { class: "card" }, el("h3", {}, title, badge || null),
    el("dl", {}, rows.flatMap(([k, v, cls]) => [el("dt", { text: k }), el("dd", { class: cls || null }, v)])));
}

function renderSummary() {
  const i = state.info;
  if (!i) return;
  const running = state.containers.filter((c) => c.State === "running").length;
  $("#summary").replaceChildren("dockyard ", el("b", { text: i.ServerVersion }), " · ", el("b", { text: i.Driver }),
    " storage · ", el("b", { text: i.ExecutionDriver || i.DefaultRuntime }), " exec · ",
    el("b", { text: String(running) }), ` running of ${state.containers.length}`);
}

async function refreshEngine() {
  try { [state.info, state.version] = await Promise.all([getJSON("/info"), getJSON("/version")]); } catch (e) { return; }
  const i = state.info, v = state.version, d = i.DockyardDrivers || {};
  renderSummary();
  const pill = (t, cls) => el("span", { class: `pill ${cls}`, text: t });
  const kinds = (kind) => {
    const k = d[kind] || { installed: [], unavailable: {} };
    const active = new Set(String(k.active || "").split(",").filter(Boolean));
    return (k.installed || []).map((name) => [name,
      active.has(name) ? "in use" : (k.unavailable || {})[name] ? `unavailable: ${k.unavailable[name]}` : "installed",
      active.has(name) ? null : (k.unavailable || {})[name] ? "warn" : "off"]);
  };
  const cards = [
    card("Engine", [["Version", `${i.ServerVersion} (API ${v.ApiVersion}, min ${v.MinAPIVersion})`],
      ["Host", i.Name], ["OS", `${i.OperatingSystem}, kernel ${i.KernelVersion}`],
      ["Resources", `${i.NCPU} CPUs, ${bytes(i.MemTotal)} memory`], ["Cgroups", `v${i.CgroupVersion} (${i.CgroupDriver})`],
      ["Data root", i.DockerRootDir], ["Labels", (i.Labels || []).join(", ") || "–"],
      ["Containers", `${i.ContainersRunning} running, ${i.ContainersPaused} paused, ${i.ContainersStopped} stopped`],
      ["Images", String(i.Images)]]),
    card("Storage driver", [["Driver", i.Driver], ...(i.DriverStatus || []).map(([k, val]) => [k, val])], pill(i.Driver, "running")),
    card("Exec driver", [["Driver", i.ExecutionDriver || i.DefaultRuntime], ...(i.DockyardExecDriverStatus || []).map(([k, val]) => [k, val])],
      pill(i.ExecutionDriver || i.DefaultRuntime, "running")),
    card("Network drivers", kinds("network")),
    card("Storage drivers installed", kinds("graph")),
    card("Registry backends", kinds("registry").map(([n, , cls]) => [n, cls === "warn" ? "unavailable" : "installed", cls])),
    card("Registries", [["Mirrors", ((i.RegistryConfig || {}).Mirrors || []).join(", ") || "–"],
      ["Insecure", Object.values((i.RegistryConfig || {}).IndexConfigs || {}).filter((x) => !x.Secure).map((x) => x.Name)
        .concat((i.RegistryConfig || {}).InsecureRegistryCIDRs || []).join(", ") || "–"]]),
  ];
  if (i.Warnings && i.Warnings.length) cards.unshift(card("Warnings", i.Warnings.map((w, n) => [String(n + 1), w, "warn"])));
  $("#engine-cards").replaceChildren(...cards);
  const report = await fetch("/dashboard/bench/latest.html", { credentials: "same-origin" });
  if (!report.ok) {
    try { $("#bench-none").textContent = `${(await report.json()).message}.`; } catch (e) { /* not JSON */ }
  }
  $("#bench-none").hidden = report.ok;
  $("#bench-link").hidden = !report.ok;
  const frame = $("#bench-frame");
  frame.hidden = !report.ok;
  if (report.ok && !frame.getAttribute("src")) frame.setAttribute("src", "/dashboard/bench/latest.html");
}

// ---- events ----------------------------------------------------------------------------------
function describe(ev) {
  const attrs = (ev.Actor || {}).Attributes || {};
  const who = attrs.name || attrs.image || shortId((ev.Actor || {}).ID) || "";
  return { who, action: (ev.Action || "").split(":")[0] };
}

function showEvent(ev, fresh) {
  const { who, action } = describe(ev);
  const t = new Date((ev.timeNano ? ev.timeNano / 1e6 : ev.time * 1000));
  const li = el("li", { class: fresh ? "fresh" : null },
    el("span", { class: "when", text: t.toLocaleTimeString([], { hour12: false }) }),
    el("span", { class: "what" }, el("span", { class: "type", text: ev.Type }), el("b", { class: `a-${action}`, text: ev.Action })),
    el("span", { class: "who", text: who, title: who }));
  const list = $("#events");
  list.prepend(li);
  while (list.childElementCount > EVENTS_KEPT) list.lastElementChild.remove();
}

const pending = new Set();
function scheduleRefresh(type) {
  pending.add(type);
  clearTimeout(scheduleRefresh.timer);
  scheduleRefresh.timer = setTimeout(() => {
    const types = new Set(pending);
    pending.clear();
    if (types.has("container")) refreshContainers().then(() => { if (state.view === "volumes") refreshVolumes(); });
    if (types.has("image") || types.has("container")) refreshImages();
    if (types.has("network")) refreshNetworks();
    if (types.has("volume")) refreshVolumes();
    if (types.has("daemon") || types.has("container") || types.has("image")) refreshEngine();
  }, 150);
}

async function followEvents() {
  let since = Math.floor(Date.now() / 1000) - 900;  // the last quarter of an hour, then live
  for (;;) {
    try {
      const resp = await api(`/events?since=${since}`);
      $("#live").className = "live on";
      $("#live").textContent = "live";
      await readLines(resp, (line) => {
        const ev = JSON.parse(line);
        since = Math.max(since, ev.time || 0);
        showEvent(ev, true);
        scheduleRefresh(ev.Type);
      });
    } catch (e) { /* the daemon went away: retry */ }
    $("#live").className = "live";
    $("#live").textContent = "offline";
    await sleep(2000);
    since += 1;
  }
}

// ---- views -----------------------------------------------------------------------------------
function showView(name) {
  state.view = name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.view === name);
  for (const s of document.querySelectorAll(".view")) s.classList.toggle("active", s.id === `view-${name}`);
  ({ containers: refreshContainers, images: refreshImages, networks: refreshNetworks,
     volumes: refreshVolumes, engine: refreshEngine })[name]();
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

async function main() {
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showView(b.dataset.view));
  $("#show-all").addEventListener("change", renderContainers);
  $("#logs-close").addEventListener("click", closeLogs);
  $("#layers-close").addEventListener("click", () => { $("#layers-panel").hidden = true; });
  $("#logs-timestamps").addEventListener("change", () => { if (state.selected) followLogs(state.selected); });
  await Promise.all([refreshEngine(), refreshContainers(), refreshImages(), refreshNetworks(), refreshVolumes()]);
  const wanted = location.hash.slice(1);
  showView(["containers", "images", "networks", "volumes", "engine"].includes(wanted) ? wanted : "containers");
  document.body.dataset.ready = "1";
  followEvents();
  pollStats();
  setInterval(() => { if (state.view === "containers") refreshContainers(); }, 10000);  // "Up 3 minutes"
}

document.addEventListener("DOMContentLoaded", main);
