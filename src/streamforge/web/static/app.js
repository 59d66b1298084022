/* StreamForge UI behaviour: plain JavaScript, no framework, no build step.
 *
 * Every change goes to the JSON API with fetch(); the session cookie comes
 * along (same origin) and the page's CSRF token is sent as X-CSRF-Token.
 * Buttons and forms say what they do with data-action; one delegated click
 * handler and one submit handler dispatch to the functions below.
 * The Live page listens to /ui/live/events (server-sent events) and redraws
 * its sessions and timelines from the data the server prepared.
 */
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
const $ = (sel, root = document) => root.querySelector(sel);
const enc = encodeURIComponent;

async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf() } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (response.status === 401) {
    location.assign(`/ui/login?next=${enc(location.pathname + location.search)}`);
    throw new Error("please log in again");
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error((data && data.error) || `HTTP ${response.status}`);
  return data;
}

function say(out, text, good) {
  if (!out) out = $("#flash");
  out.textContent = text;
  out.classList.toggle("good", good === true);
  out.classList.toggle("bad", good === false);
}

function formData(form) {
  const data = {};
  for (const el of form.elements) {
    if (!el.name || el.type === "submit" || el.type === "button") continue;
    if (el.type === "radio") { if (el.checked) data[el.name] = el.value; continue; }
    if (el.type === "checkbox") { data[el.name] = el.checked; continue; }
    data[el.name] = el.value.trim();
  }
  return data;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const channelRef = (id) => enc(`#${id}`);

/* -- accounts ------------------------------------------------------------ */
async function accountProbe(button) {
  const form = button.form, out = $("#account-form-result"), d = formData(form);
  say(out, "Testing…");
  try {
    const r = await api("POST", "/api/v1/accounts/probe",
      { server_url: d.server_url, username: d.username, password: d.password });
    const ok = r.ok !== false;
    say(out, ok ? `Works: ${r.message || "account answered"}` +
      (r.max_connections ? `, ${r.max_connections} connections` : "") +
      (r.exp_date ? `, expires ${r.exp_date}` : "") : `Does not work: ${r.message}`, ok);
  } catch (e) { say(out, `Does not work: ${e.message}`, false); }
}

async function accountAdd(form) {
  const out = $("#account-form-result"), d = formData(form);
  say(out, d.no_check ? "Saving…" : "Saving (testing first)…");
  try {
    const r = await api("POST", "/api/v1/accounts", {
      name: d.name, server_url: d.server_url, username: d.username, password: d.password,
      priority: parseInt(d.priority || "0", 10), test: !d.no_check, check: !d.no_check });
    // The page reloads to list the account; the message is shown again after it.
    sessionStorage.setItem("account-form-result",
      JSON.stringify([`Saved ${r.account.name}: ${r.message}`, r.ok]));
    location.reload();
  } catch (e) { say(out, /not saved/i.test(e.message) ? e.message : `Not saved: ${e.message}`, false); }
}

function keptAccountMessage() {
  const kept = sessionStorage.getItem("account-form-result"), out = $("#account-form-result");
  if (!kept || !out) return;
  sessionStorage.removeItem("account-form-result");
  const [text, good] = JSON.parse(kept);
  say(out, text, good);
}

async function accountEdit(form) {
  const name = form.dataset.account, d = formData(form), body = {};
  for (const [k, v] of Object.entries(d)) if (v) body[k] = v;
  try { await api("PATCH", `/api/v1/accounts/${enc(name)}`, body); location.reload(); }
  catch (e) { say(null, `Not saved: ${e.message}`, false); }
}

async function accountSync(button) {
  const name = button.dataset.account, row = button.closest("tr");
  const bar = $("progress.sync", row), out = $("output", row);
  button.disabled = true; bar.hidden = false; bar.removeAttribute("value");
  try {
    let s = await api("POST", `/api/v1/accounts/${enc(name)}/sync`);
    while (s.state === "running") {
      say(out, `${s.stage || "syncing"} ${s.done}/${s.total || "?"}`);
      if (s.total) { bar.max = s.total; bar.value = s.done; }
      await sleep(400);
      s = await api("GET", `/api/v1/accounts/${enc(name)}/sync`);
    }
    if (s.state === "failed") throw new Error(s.error || "sync failed");
    bar.max = 1; bar.value = 1;
    say(out, "sync done", true);
    location.reload();
  } catch (e) { say(out, `sync failed: ${e.message}`, false); button.disabled = false; }
}

async function accountTest(button) {
  const out = $("output", button.closest("tr"));
  say(out, "testing…");
  try {
    const r = await api("POST", `/api/v1/accounts/${enc(button.dataset.account)}/test`);
    say(out, r.message, r.ok);
  } catch (e) { say(out, e.message, false); }
}

async function accountToggle(button) {
  const active = button.dataset.active === "true";
  try {
    await api("PATCH", `/api/v1/accounts/${enc(button.dataset.account)}`, { is_active: !active });
    location.reload();
  } catch (e) { say(null, e.message, false); }
}

async function accountPriority(input) {
  try {
    await api("PATCH", `/api/v1/accounts/${enc(input.dataset.account)}`,
      { priority: parseInt(input.value, 10) });
    say(null, `Priority of ${input.dataset.account} is now ${input.value}.`, true);
  } catch (e) { say(null, e.message, false); }
}

/* -- guides -------------------------------------------------------------- */
function report(r) {
  if (!r) return "";
  const parts = [];
  for (const [k, v] of Object.entries(r)) if (typeof v !== "object") parts.push(`${k}: ${v}`);
  return parts.join(", ");
}

async function guideAdd(form) {
  const d = formData(form), out = $("#guide-form-result"), bar = $("progress", form);
  const body = { name: d.name, priority: parseInt(d.priority || "0", 10) };
  body[d.kind] = d[d.kind];
  bar.hidden = false; say(out, "Adding and importing…");
  try {
    const r = await api("POST", "/api/v1/epg", body);
    say(out, `Imported: ${report(r.import)}; matching streams…`, true);
    const m = await api("POST", "/api/v1/match");
    say(out, `Imported: ${report(r.import)}; ${m.channels_with_streams} channels have streams, ` +
      `${m.channels_with_backups} with backups.`, true);
    location.reload();
  } catch (e) { say(out, `Failed: ${e.message}`, false); }
  finally { bar.hidden = true; }
}

async function guideRefresh(button) {
  const cell = button.closest("td"), bar = $("progress", cell), out = $("output", cell);
  button.disabled = true; bar.hidden = false; say(out, "refreshing…");
  try {
    const r = await api("POST", `/api/v1/epg/${enc(button.dataset.source)}/refresh`);
    say(out, report(r), true);
  } catch (e) { say(out, e.message, false); }
  finally { bar.hidden = true; button.disabled = false; }
}

function guideKind(form) {
  const kind = formData(form).kind;
  for (const label of form.querySelectorAll("label[data-kind]")) {
    label.hidden = label.dataset.kind !== kind;
    for (const input of label.querySelectorAll("input, select")) input.required = !label.hidden;
  }
}

async function guideSourceSave(form) {
  const d = formData(form), out = $("output", form);
  try {
    const r = await api("PATCH", `/api/v1/epg/${enc(form.dataset.source)}`, {
      priority: parseInt(d.priority || "0", 10),
      time_offset_minutes: parseInt(d.time_offset_minutes || "0", 10),
    });
    say(out, `saved: priority ${r.priority}, offset ${r.time_offset_minutes} min`, true);
  } catch (e) { say(out, e.message, false); }
}

/* -- channels ------------------------------------------------------------ */
async function channelOffset(form) {
  const out = $("output", form);
  try {
    const r = await api("PATCH", `/api/v1/channels/${channelRef(form.dataset.channel)}`,
      { time_offset_minutes: parseInt(formData(form).time_offset_minutes || "0", 10) });
    say(out, `saved: guide times shifted by ${r.time_offset_minutes} min`, true);
  } catch (e) { say(out, e.message, false); }
}

async function channelToggle(button) {
  const enabled = button.dataset.enabled === "true";
  try {
    await api("PATCH", `/api/v1/channels/${channelRef(button.dataset.channel)}`, { is_enabled: !enabled });
    location.reload();
  } catch (e) { say(null, e.message, false); }
}

async function channelNumber(form) {
  try {
    await api("PATCH", `/api/v1/channels/${channelRef(form.dataset.channel)}`,
      { guide_number: formData(form).guide_number });
    location.reload();
  } catch (e) { say(null, e.message, false); }
}

async function channelHealth(form) {
  const body = {}, out = $("#health-result");
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.dataset.kind === "bool") body[el.name] = el.checked;
    else body[el.name] = el.value.trim() === "" ? null : Number(el.value);
  }
  try {
    await api("PATCH", `/api/v1/channels/${channelRef(form.dataset.channel)}/health`, body);
    say(out, "Saved.", true);
  } catch (e) { say(out, `Not saved: ${e.message}`, false); }
}

async function matchRun(button) {
  const out = $("#match-result");
  button.disabled = true; say(out, "matching…");
  try {
    const r = await api("POST", "/api/v1/match");
    say(out, `${r.channels_with_streams} channels have streams, ${r.channels_with_backups} with backups.`, true);
    location.reload();
  } catch (e) { say(out, e.message, false); button.disabled = false; }
}

async function mapMove(button, delta) {
  const list = button.closest("ol"), item = button.closest("li");
  const order = [...list.children].map((li) => li.dataset.ref);
  const i = order.indexOf(item.dataset.ref), j = i + delta;
  if (j < 0 || j >= order.length) return;
  [order[i], order[j]] = [order[j], order[i]];
  try {
    await api("PUT", `/api/v1/channels/${channelRef(list.dataset.channel)}/order`, { order });
    location.reload();
  } catch (e) { say(null, e.message, false); }
}

async function mapCall(button, method, suffix) {
  const list = button.closest("ol"), ref = button.closest("li").dataset.ref;
  try {
    await api(method, `/api/v1/channels/${channelRef(list.dataset.channel)}/${suffix}/${ref}`);
    location.reload();
  } catch (e) { say(null, e.message, false); }
}

async function mapAdd(button) {
  try {
    await api("POST", `/api/v1/channels/${channelRef(button.dataset.channel)}/mappings`,
      { stream: button.dataset.ref });
    location.reload();
  } catch (e) { say(null, e.message, false); }
}

/* -- setup, settings, demo ---------------------------------------------- */
async function copyText(button) {
  const text = document.getElementById(button.dataset.target).textContent.trim();
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    const area = document.createElement("textarea");
    area.value = text; document.body.appendChild(area); area.select();
    document.execCommand("copy"); area.remove();
  }
  button.textContent = "Copied!";
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
}

async function settingsSave(form) {
  const body = {}, out = $("#settings-result");
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.dataset.kind === "bool") body[el.name] = el.checked;
    else if (el.dataset.kind === "number") body[el.name] = el.value.trim() === "" ? "" : Number(el.value);
    else body[el.name] = el.value.trim();
  }
  try {
    const r = await api("POST", "/ui/settings", body);
    say(out, `Saved. Applied now: ${r.applied.join(", ") || "none"}. After restart: ${r.after_restart.join(", ") || "none"}.`, true);
  } catch (e) { say(out, `Not saved: ${e.message}`, false); }
}

async function demoFault(form) {
  const d = formData(form), out = $("#demo-result");
  try {
    const r = await api("POST", "/ui/demo/fault", d);
    say(out, `Injected ${r.fault} into ${r.stream} (${r.account}); watch the timeline.`, true);
  } catch (e) { say(out, e.message, false); }
}

async function demoRecover() {
  const out = $("#demo-result");
  try {
    const r = await api("POST", "/ui/demo/recover");
    say(out, `Recovered streams: ${r.recovered.join(", ") || "none were broken"}.`, true);
  } catch (e) { say(out, e.message, false); }
}

const clicks = {
  "account-probe": accountProbe, "account-sync": accountSync, "account-test": accountTest,
  "account-toggle": accountToggle, "guide-refresh": guideRefresh, "channel-toggle": channelToggle,
  "match-run": matchRun,
  "map-up": (b) => mapMove(b, -1), "map-down": (b) => mapMove(b, 1),
  "map-primary": (b) => mapCall(b, "POST", "primary"), "map-add": mapAdd,
  "map-remove": (b) => mapCall(b, "DELETE", "mappings"), "copy": copyText,
  "demo-recover": demoRecover, "session-next": (b) => sessionNext(b),
  "session-unpin": (b) => sessionUnpin(b),
};
const submits = {
  "account-add": accountAdd, "account-edit": accountEdit, "guide-add": guideAdd,
  "channel-number": channelNumber, "channel-health": channelHealth, "settings-save": settingsSave, "demo-fault": demoFault,
  "channel-number": channelNumber, "settings-save": settingsSave, "demo-fault": demoFault,
  "guide-source-save": guideSourceSave, "channel-offset": channelOffset,
  "session-switch": (f) => sessionSwitch(f),
};

document.addEventListener("click", (ev) => {
  const el = ev.target.closest("button[data-action]");
  if (el && clicks[el.dataset.action]) { ev.preventDefault(); clicks[el.dataset.action](el); }
});
document.addEventListener("submit", (ev) => {
  const form = ev.target.closest("form[data-action]");
  if (form && submits[form.dataset.action]) { ev.preventDefault(); submits[form.dataset.action](form); }
});
document.addEventListener("change", (ev) => {
  if (ev.target.matches("input[data-action='account-priority']")) accountPriority(ev.target);
  if (ev.target.matches("input[data-action='guide-kind']")) guideKind(ev.target.form);
});
for (const form of document.querySelectorAll("#guide-form")) guideKind(form);
keptAccountMessage();

/* -- live page ----------------------------------------------------------- */
function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawTimeline(s) {
  const fig = el("figure", { class: "timeline", "aria-label": `Timeline of channel ${s.guide_number}` });
  const bar = el("div", { class: "bar" });
  for (const seg of s.picture.segments) {
    bar.append(el("span", { class: `seg c${seg.colour}`, style: `left: ${seg.left}%; width: ${seg.width}%`,
      title: `${seg.stream}: ${seg.start}–${seg.end} s` }, seg.stream));
  }
  const caption = el("figcaption");
  for (const m of s.picture.marks) {
    bar.append(el("span", { class: `mark k-${m.kind}`, style: `left: ${m.pct}%`, title: m.title,
      tabindex: "0", "aria-label": m.title }));
    caption.append(el("span", { class: `chip k-${m.kind}`, title: m.title }, m.title), " ");
  }
  const axis = el("div", { class: "axis", "aria-label": "time since the session started" });
  for (const t of s.picture.ticks || []) axis.append(el("span", { style: `left: ${t.pct}%` }, t.label));
  fig.append(bar, axis, caption);
  return fig;
}

function drawSessions(sessions) {
  const box = $("#sessions");
  box.replaceChildren();
  if (!sessions.length) {
    box.append(el("p", { class: "muted" }, "Nobody is watching. Open a channel's URL in a player to start a session."));
    return;
  }
  for (const s of sessions) {
    const card = el("article", { class: "card session", "data-guide": s.guide_number });
    const title = el("h3", { class: "title-logo" });
    const logo = (JSON.parse(box.dataset.logos || "{}"))[s.guide_number];
    if (logo) title.append(el("img", { class: "logo small", src: logo, alt: "", referrerpolicy: "no-referrer" }));
    title.append(`${s.guide_number} ${s.channel}`);
    card.append(title);
    const facts = el("p", { class: "facts" });
    const stream = el("span", {}, "Stream ");
    stream.append(el("strong", { class: "stream" }, s.stream || "—"), ` (${s.stream_ref || s.account || "—"})`);
    const fo = el("span", {}, "Failovers ");
    fo.append(el("strong", { class: "failovers" }, String(s.failovers)));
    facts.append(stream, el("span", {}, `Quality ${s.quality || "—"}`), el("span", {}, `Clients ${s.clients}`),
      el("span", {}, `${s.bitrate_kbps} kbit/s`), fo, el("span", {}, `Upgrades ${s.upgrades}`),
      el("span", {}, `State ${s.state}`));
    if (s.pinned) facts.append(el("span", { class: "badge pinned" }, "pinned"));
    if (s.holding) facts.append(el("span", { class: "badge holding" }, "outage slate"));
    if (s.upgrade_waiting) facts.append(el("span", { class: "waiting" },
      `Waiting to return to ${s.upgrade_waiting.stream}: its connection is in use by another channel`));
    card.append(facts, drawTimeline(s), sessionControls(s));
    box.append(card);
  }
}

/* One control form per channel, kept across redraws so a choice in progress survives. */
const controls = new Map();
function sessionControls(s) {
  const refs = s.streams.map((st) => st.ref).join(" ");
  const playing = (s.streams.find((st) => st.stream === s.stream && st.account === s.account) || {}).ref || "";
  let form = controls.get(s.guide_number);
  if (form && form.dataset.refs === refs) {
    const select = $("select", form);
    if (form.dataset.playing !== playing && document.activeElement !== select) select.value = playing;
    form.dataset.playing = playing;
    return form;
  }
  form = el("form", { class: "row wrap controls", "data-action": "session-switch",
    "data-guide": s.guide_number, "data-refs": refs, "data-playing": playing,
    "aria-label": `Control channel ${s.guide_number}` });
  const label = el("label", {}, "Stream ");
  const select = el("select", { name: "stream" });
  for (const st of s.streams) {
    const option = el("option", { value: st.ref }, `${st.stream} (${st.ref})`);
    if (st.ref === playing) option.selected = true;
    select.append(option);
  }
  label.append(select);
  form.append(label, el("button", { type: "submit" }, "Switch and pin"),
    el("button", { type: "button", "data-action": "session-next", "data-guide": s.guide_number }, "Switch to next stream"),
    el("button", { type: "button", "data-action": "session-unpin", "data-guide": s.guide_number }, "Unpin"),
    el("output", { class: "result", "aria-live": "polite" }));
  controls.set(s.guide_number, form);
  return form;
}

async function sessionControl(guide, action, body, out) {
  try {
    const [r] = await api("POST", `/api/v1/sessions/${enc(guide)}/${action}`, body);
    say(out, r ? `Now ${r.stream || "—"} (${r.account || "—"})${r.pinned ? ", pinned" : ""}` : "done", true);
  } catch (e) { say(out, e.message, false); }
}
const sessionSwitch = (form) =>
  sessionControl(form.dataset.guide, "switch", { stream: formData(form).stream }, $("output", form));
const sessionNext = (b) => sessionControl(b.dataset.guide, "switch", { next: true }, $("output", b.form));
const sessionUnpin = (b) => sessionControl(b.dataset.guide, "unpin", undefined, $("output", b.form));

function startLive() {
  const state = $("#live-state"), list = $("#live-events");
  const source = new EventSource("/ui/live/events");
  source.addEventListener("open", () => { state.textContent = "live"; });
  source.addEventListener("error", () => { state.textContent = "reconnecting…"; });
  source.addEventListener("sessions", (ev) => drawSessions(JSON.parse(ev.data)));
  source.addEventListener("event", (ev) => {
    const e = JSON.parse(ev.data);
    if (e.category !== "stream") return;
    const li = el("li");
    li.append(el("span", { class: `badge lvl-${e.level}` }, e.level), ` ${e.timestamp.slice(11, 19)} ${e.message}`);
    list.prepend(li);
    while (list.children.length > 50) list.lastElementChild.remove();
  });
}

if (document.body.dataset.page === "live") startLive();
