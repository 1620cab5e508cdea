/* baodao kiosk screen: renders what the kiosk service pushes on /events (server-sent events).
 *
 * Why it is built this way: a tap is decided and committed by the kiosk process before it is published,
 * so the page only has to paint it. The page never waits on the network for a tap: taps arrive on the
 * event stream and are drawn at once; anything fetched (today's count, maintenance health) is fetched
 * after painting. Every confirmation records its requestAnimationFrame time in window.__baodao.paints so
 * tests and bench/screen_latency.py can measure read → painted.
 */
(function () {
  "use strict";

  // The screen's texts come from the kiosk's gettext catalogue (kiosk/translations/, ids screen.*),
  // rendered into the page by kiosk/ui/views.py: {zh: {name: text}, en: {...}}.
  var I18N = window.BAODAO_I18N || { zh: {}, en: {} };
  var HIDE_AFTER_MS = { green: 3500, amber: 4000, blue: 2500, red: 6000 };
  var IDLE_RESET_MS = 90000;
  var SOUND_FOR = { green: "ok", blue: "ok", amber: "warn", red: "error" };

  var body = document.body;
  var defaultLang = body.dataset.lang === "en" ? "en" : "zh";
  var lang = defaultLang;
  var state = null;
  var lastShownN = 0;
  var hideTimer = null;
  var keypadOpen = false;
  var keypad = { field: "member", member: "", pin: "", letters: false, busy: false };
  var binding = { stage: "wait", query: "", results: [], chosen: null, captured: null };
  var maintTimer = null;
  var lastTouch = Date.now();
  var sounds = {};

  window.__baodao = { paints: [], received: [], sounds: [] };

  function $(id) { return document.getElementById(id); }
  function t(key, vars) {
    var s = (I18N[lang] && I18N[lang][key]) || I18N.zh[key] || key;
    if (vars) { Object.keys(vars).forEach(function (k) { s = s.split("{" + k + "}").join(vars[k]); }); }
    return s;
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function post(url, data) {
    return fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data || {}) })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, status: r.status, data: j }; }); });
  }

  // -- sounds -----------------------------------------------------------------------------------
  (window.BAODAO_SOUNDS || []).forEach(function (name) {
    var a = new Audio("/ui/sounds/" + name + ".wav");
    a.preload = "auto";
    sounds[name] = a;
  });
  function play(name) {
    window.__baodao.sounds.push(name);
    body.dataset.sound = name;
    var a = sounds[name];
    if (!a) return;
    try { a.currentTime = 0; var p = a.play(); if (p && p.catch) p.catch(function () {}); } catch (e) { /* no audio device */ }
  }

  // -- language, clock, idle ----------------------------------------------------------------------
  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    body.dataset.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach(function (e) { e.textContent = t(e.dataset.i18n); });
    renderClock();
    renderState();
    renderKeypad();
  }
  function tz() { return (state && state.timezone) || "Asia/Shanghai"; }
  function renderClock() {
    var now = new Date();
    var locale = lang === "zh" ? "zh-CN" : "en-GB";
    try {
      $("clock").textContent = new Intl.DateTimeFormat("en-GB", { timeZone: tz(), hour: "2-digit", minute: "2-digit", hour12: false }).format(now);
      $("date").textContent = new Intl.DateTimeFormat(locale, { timeZone: tz(), year: "numeric", month: "long", day: "numeric", weekday: "long" }).format(now);
    } catch (e) { $("clock").textContent = now.toTimeString().slice(0, 5); }
  }

  function renderState() {
    if (!state) return;
    $("centre-name").textContent = state.centre_name || "";
    var net = $("net");
    net.dataset.online = state.online ? "true" : "false";
    var text = state.online ? t("online") : t("offline");
    if (state.outbox_depth > 0 || !state.online) text += " · " + t("backlog", { n: state.outbox_depth });
    $("net-text").textContent = text;
    $("today-count").textContent = String(state.today_count);
    var msg = $("message");
    if (state.message && (state.message.text || state.message.text_en)) {
      msg.hidden = false;
      msg.textContent = lang === "en" && state.message.text_en ? state.message.text_en : state.message.text;
    } else {
      msg.hidden = true;
    }
    if (state.locked) {
      var lt = state.lock_text || [I18N.zh.locked_default, I18N.en.locked_default];
      $("lock-primary").textContent = lang === "en" ? lt[1] : lt[0];
      $("lock-secondary").textContent = lang === "en" ? lt[0] : lt[1];
    }
    showScreen(baseScreen());
  }

  function baseScreen() {
    if (state && state.mode === "binding") return "binding";
    if (state && state.mode === "maintenance") return "maintenance";
    if (state && state.locked) return "locked";
    if (keypadOpen) return "keypad";
    return "idle";
  }

  function showScreen(name) {
    if (body.dataset.screen !== name) {
      document.querySelectorAll(".screen").forEach(function (s) { s.hidden = s.id !== "screen-" + name; });
      body.dataset.screen = name;
      if (name === "maintenance") startMaintenancePolling(); else stopMaintenancePolling();
      if (name === "binding") renderBinding();
    }
  }

  function onState(s) {
    var prevMode = state ? state.mode : null;
    state = s;
    if ((s.language === "zh" || s.language === "en") && s.language !== defaultLang) {
      // a pushed config changed the default language: follow it unless a member is using the other one
      var following = lang === defaultLang;
      defaultLang = s.language;
      if (following) { lang = defaultLang; applyLang(); }
    }
    if (s.mode !== "binding" && prevMode === "binding") resetBinding();
    if (s.mode === "binding" && prevMode !== "binding") { resetBinding(); if (s.binding_captured) binding.stage = "pick"; }
    if (s.mode !== "idle") keypadOpen = false;
    renderState();
    if (s.mode === "binding") renderBinding();
  }

  var refreshTimer = null;
  function refreshStateSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(function () {
      fetch("/api/state").then(function (r) { return r.json(); }).then(function (j) { if (j.state) { state = j.state; renderState(); } }).catch(function () {});
    }, 250);
  }

  // -- confirmation ----------------------------------------------------------------------------
  function headFor(o) {
    if (o.kind === "in" || o.kind === "out") return t(o.kind);
    if (o.kind === "in_elsewhere") return t("in");
    if (o.kind === "out_review") return t("out");
    if (o.kind === "duplicate" || o.kind === "bound") return lang === "en" ? o.message_en : o.message_zh;
    if (o.kind === "pin_wrong" || o.kind === "invalid" || o.kind === "qr_refused") return lang === "en" ? o.message_en : o.message_zh;
    return t("see_staff");
  }
  function iconFor(o) {
    if (o.colour === "green" || o.colour === "blue") return "\u2714";
    if (o.colour === "amber") return "!";
    return "\u2716";
  }
  function localTime(iso) {
    try { return new Intl.DateTimeFormat("en-GB", { timeZone: tz(), hour: "2-digit", minute: "2-digit", hour12: false }).format(new Date(iso)); }
    catch (e) { return ""; }
  }

  function showOutcome(o) {
    if (!o || typeof o.n !== "number" || o.n <= lastShownN) return;
    lastShownN = o.n;
    if (o.kind === "staff") { refreshStateSoon(); return; }  // the state event switches the screen
    if (o.kind === "binding_captured") { onBindingCaptured(o); return; }
    var c = $("confirm");
    c.dataset.n = String(o.n);
    c.dataset.kind = o.kind;
    c.dataset.colour = o.colour;
    $("confirm-icon").textContent = iconFor(o);
    $("confirm-head").textContent = headFor(o);
    $("confirm-name").textContent = o.masked_name || "";
    $("confirm-unit").textContent = o.unit_name || "";
    var primary = lang === "en" ? o.message_en : o.message_zh;
    var secondary = lang === "en" ? o.message_zh : o.message_en;
    $("confirm-msg").textContent = primary === headFor(o) ? secondary : primary;
    $("confirm-sub").textContent = (o.kind === "in" || o.kind === "out" || o.kind === "in_elsewhere" || o.kind === "out_review") ? t("at") + " " + localTime(o.at) : (primary === headFor(o) ? "" : secondary);
    c.hidden = false;
    var painted = false;
    requestAnimationFrame(function (ts) {
      painted = true;
      var marks = window.__baodao.paints;
      marks.push({ n: o.n, kind: o.kind, t: performance.timeOrigin + ts });
      if (marks.length > 2000) marks.splice(0, 1000);
    });
    play(SOUND_FOR[o.colour] || "error");
    clearTimeout(hideTimer);
    var hideAfter = (o.kind === "pin_wrong" || o.kind === "pin_locked") ? 2500 : (HIDE_AFTER_MS[o.colour] || 5000);
    hideTimer = setTimeout(function () { c.hidden = true; c.dataset.kind = ""; }, hideAfter);
    if (o.kind === "pin_wrong" || o.kind === "pin_locked") {
      keypad.pin = "";
      $("keypad-hint").textContent = lang === "en" ? o.message_en : o.message_zh;
      renderKeypad();
    } else if (keypadOpen && o.credential_kind === "pin") {
      closeKeypad();
    }
    if (o.kind === "bound") resetBinding();
    refreshStateSoon();
    return painted;
  }

  // -- keypad ----------------------------------------------------------------------------------
  function openKeypad() {
    keypadOpen = true;
    keypad.field = "member"; keypad.member = ""; keypad.pin = ""; keypad.letters = false;
    $("keypad-hint").textContent = "";
    renderKeypad();
    showScreen(baseScreen());
  }
  function closeKeypad() {
    keypadOpen = false;
    keypad.member = ""; keypad.pin = "";
    showScreen(baseScreen());
  }
  function keyButton(label, action, cls) {
    var b = el("button", "key" + (cls ? " " + cls : ""), label);
    b.type = "button";
    b.dataset.key = action;
    return b;
  }
  function renderKeypad() {
    $("value-member").textContent = keypad.member;
    $("value-pin").textContent = keypad.pin.replace(/./g, "\u25CF");
    $("field-member").classList.toggle("active", keypad.field === "member");
    $("field-pin").classList.toggle("active", keypad.field === "pin");
    var keys = $("keys");
    keys.textContent = "";
    var letters = keypad.letters && keypad.field === "member";
    keys.classList.toggle("letters", letters);
    if (letters) {
      "ABCDEFGHIJKLMNOPQRSTUVWXYZ".split("").forEach(function (ch) { keys.appendChild(keyButton(ch, ch)); });
      keys.appendChild(keyButton(t("num"), "num", "wide"));
      keys.appendChild(keyButton("\u232B", "del", "wide"));
      return;
    }
    "123456789".split("").forEach(function (d) { keys.appendChild(keyButton(d, d)); });
    var abc = keyButton(t("abc"), "abc");
    abc.disabled = keypad.field !== "member";
    keys.appendChild(abc);
    keys.appendChild(keyButton("0", "0"));
    keys.appendChild(keyButton("\u232B", "del"));
    var ok = keyButton(t("ok"), "ok", "ok");
    ok.style.gridColumn = "span 3";
    ok.disabled = keypad.busy;
    keys.appendChild(ok);
  }
  function keypadKey(k) {
    var f = keypad.field;
    if (k === "abc") { keypad.letters = true; }
    else if (k === "num") { keypad.letters = false; }
    else if (k === "del") { keypad[f] = keypad[f].slice(0, -1); }
    else if (k === "ok") { submitPin(); return; }
    else if (f === "member" && keypad.member.length < 32) { keypad.member += k; }
    else if (f === "pin" && /^[0-9]$/.test(k) && keypad.pin.length < 8) { keypad.pin += k; }
    renderKeypad();
  }
  function submitPin() {
    if (!keypad.member || keypad.pin.length < 4) {
      $("keypad-hint").textContent = t("need_both");
      if (!keypad.member) keypad.field = "member"; else keypad.field = "pin";
      renderKeypad();
      return;
    }
    keypad.busy = true;
    renderKeypad();
    post("/api/pin", { member_no: keypad.member, pin: keypad.pin })
      .then(function (r) { if (r.data && typeof r.data.n === "number") showOutcome(r.data); })
      .catch(function () {})
      .then(function () { keypad.busy = false; renderKeypad(); });
  }

  // -- maintenance -----------------------------------------------------------------------------
  function age(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 120) return Math.round(seconds) + " " + t("sec");
    if (seconds < 7200) return Math.round(seconds / 60) + " " + t("min");
    return (seconds / 3600).toFixed(1) + " " + t("h");
  }
  function renderHealth(h) {
    var dl = $("health");
    dl.textContent = "";
    function row(key, value, bad) {
      var dt = el("dt", null, t(key));
      var dd = el("dd", bad ? "bad" : null, value);
      dt.dataset.key = key; dd.dataset.key = key;
      dl.appendChild(dt); dl.appendChild(dd);
    }
    function devices(list) {
      if (!list.length) return t("none");
      return list.map(function (r) { return r.reader_id + ": " + r.state + (r.last_error ? " (" + r.last_error + ")" : ""); }).join("; ");
    }
    row("status", h.status, h.status !== "ok");
    row("network", h.online ? t("online") : t("offline") + (h.last_error ? " — " + h.last_error : ""), !h.online);
    row("readers", devices(h.readers), h.readers.some(function (r) { return r.state !== "ready"; }));
    row("cameras", devices(h.cameras), h.cameras.some(function (r) { return r.state !== "ready"; }));
    row("outbox", String(h.outbox.depth), h.outbox.capacity_alarm);
    row("oldest", age(h.outbox.oldest_unsynced_age_s), false);
    row("last_sync", h.last_sync ? new Date(h.last_sync).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: tz() }) : t("never"), !h.last_sync);
    row("clock_offset", h.clock_offset_ms + " ms", Math.abs(h.clock_offset_ms) > 120000);
    row("software", h.software_version, false);
    var cv = h.config_version || {};
    row("config", (cv.pushed !== null && cv.pushed !== undefined ? "v" + cv.pushed + " · " : "") + (cv.file || "") + (cv.file_digest ? " #" + cv.file_digest : ""), false);
    row("kiosk", h.kiosk_id || t("not_enrolled"), !h.enrolled);
    row("roster", String(h.roster_size), h.roster_size === 0);
  }
  function pollMaintenance() {
    fetch("/ui/api/maintenance").then(function (r) { return r.ok ? r.json() : null; })
      .then(function (h) { if (h) { renderHealth(h); body.dataset.healthLoaded = "true"; } }).catch(function () {});
  }
  function startMaintenancePolling() {
    $("maint-note").textContent = "";
    pollMaintenance();
    clearInterval(maintTimer);
    maintTimer = setInterval(pollMaintenance, 2000);
  }
  function stopMaintenancePolling() { clearInterval(maintTimer); maintTimer = null; body.dataset.healthLoaded = "false"; }

  // -- binding ---------------------------------------------------------------------------------
  function resetBinding() { binding = { stage: "wait", query: "", results: [], chosen: null, captured: null }; renderBinding(); }
  function onBindingCaptured(o) {
    binding.stage = "pick";
    binding.captured = o;
    binding.chosen = null;
    play("ok");
    renderBinding();
    searchMembers();
  }
  var searchTimer = null;
  function searchMembers() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      fetch("/api/members?q=" + encodeURIComponent(binding.query)).then(function (r) { return r.ok ? r.json() : { members: [] }; })
        .then(function (j) { binding.results = j.members || []; renderBinding(); }).catch(function () {});
    }, 120);
  }
  function renderBinding() {
    $("bind-wait").hidden = binding.stage !== "wait";
    $("bind-pick").hidden = binding.stage !== "pick";
    $("bind-confirm").hidden = binding.stage !== "confirm";
    $("screen-binding").dataset.stage = binding.stage;
    if (binding.stage === "pick") {
      var cap = binding.captured;
      $("bind-captured").textContent = t("bind_captured") + (cap && cap.detail === "already_bound" ? " — " + t("bind_already", { name: cap.masked_name || "" }) : "");
      $("bind-query").textContent = binding.query;
      var keys = $("bind-keys");
      if (!keys.childElementCount) {
        "1234567890ABCDEFGHIJKLMNOPQRSTUVWXYZ".split("").forEach(function (ch) { keys.appendChild(keyButton(ch, ch)); });
        keys.appendChild(keyButton("\u232B", "del", "wide"));
        keys.appendChild(keyButton(t("clear"), "clear", "wide"));
      }
      var ul = $("bind-results");
      ul.textContent = "";
      if (!binding.results.length) ul.appendChild(el("li", "empty", t("no_results")));
      binding.results.forEach(function (m) {
        var li = el("li");
        var b = el("button", "member", m.masked_name + " · " + m.unit_name + (m.member_no ? " · " + m.member_no : ""));
        b.type = "button";
        b.dataset.memberId = String(m.member_id);
        b.addEventListener("click", function () { binding.chosen = m; binding.stage = "confirm"; renderBinding(); });
        li.appendChild(b);
        ul.appendChild(li);
      });
    }
    if (binding.stage === "confirm" && binding.chosen) {
      $("bind-confirm-text").textContent = t("bind_question", { name: binding.chosen.masked_name, unit: binding.chosen.unit_name });
    }
  }
  function bindKey(k) {
    if (k === "del") binding.query = binding.query.slice(0, -1);
    else if (k === "clear") binding.query = "";
    else if (binding.query.length < 32) binding.query += k;
    $("bind-query").textContent = binding.query;
    searchMembers();
  }

  // -- simulator (demo only) -------------------------------------------------------------------
  function simRead(kind, value) {
    // fire and forget: the confirmation arrives on the event stream like a real reader's
    post("/sim/read", { kind: kind, value: value }).catch(function () {});
  }
  function setupSimulator() {
    if (!$("sim-panel")) return;
    $("sim-toggle").addEventListener("click", function () { $("sim-body").hidden = !$("sim-body").hidden; });
    fetch("/ui/api/demo").then(function (r) { return r.json(); }).then(function (j) {
      var box = $("sim-entries");
      (j.entries || []).forEach(function (e) {
        var b = el("button", "sim-btn", (e.kind === "qr" ? "\u25A6 " : "\u25AD ") + e.label);
        b.type = "button";
        b.dataset.kind = e.kind;
        b.dataset.value = e.value;
        b.addEventListener("click", function (ev) { ev.stopPropagation(); simRead(e.kind, e.value); });
        box.appendChild(b);
      });
    }).catch(function () {});
    $("sim-unknown").addEventListener("click", function () {
      var hex = "04";
      for (var i = 0; i < 6; i++) hex += ("0" + Math.floor(Math.random() * 256).toString(16)).slice(-2);
      simRead("card", hex.toUpperCase());
    });
    $("sim-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var raw = $("sim-value").value.trim();
      var i = raw.indexOf(":");
      if (i > 0) simRead(raw.slice(0, i), raw.slice(i + 1));
    });
  }

  // -- wiring ----------------------------------------------------------------------------------
  $("btn-keypad").addEventListener("click", openKeypad);
  $("keypad-back").addEventListener("click", closeKeypad);
  $("btn-lang").addEventListener("click", function () { lang = lang === "zh" ? "en" : "zh"; applyLang(); });
  $("field-member").addEventListener("click", function () { keypad.field = "member"; renderKeypad(); });
  $("field-pin").addEventListener("click", function () { keypad.field = "pin"; keypad.letters = false; renderKeypad(); });
  $("keys").addEventListener("click", function (ev) { var k = ev.target.closest(".key"); if (k && !k.disabled) keypadKey(k.dataset.key); });
  $("bind-keys").addEventListener("click", function (ev) { var k = ev.target.closest(".key"); if (k) bindKey(k.dataset.key); });
  $("maint-exit").addEventListener("click", function () { post("/api/maintenance/exit"); });
  $("btn-bind").addEventListener("click", function () { post("/api/binding/start"); });
  $("btn-sync").addEventListener("click", function () {
    post("/ui/api/sync-now").then(function (r) {
      $("maint-note").textContent = r.ok ? t("sync_requested") : (lang === "en" ? r.data.message : r.data.message_zh);
      pollMaintenance();
    }).catch(function () {});
  });
  $("bind-cancel").addEventListener("click", function () { post("/ui/api/binding/cancel"); });
  $("bind-no").addEventListener("click", function () { binding.stage = "pick"; binding.chosen = null; renderBinding(); });
  $("bind-yes").addEventListener("click", function () {
    if (!binding.chosen) return;
    post("/api/binding/confirm", { member_id: binding.chosen.member_id }).then(function (r) {
      if (r.data && typeof r.data.n === "number") showOutcome(r.data);
      else if (r.data) $("bind-captured").textContent = lang === "en" ? r.data.message : r.data.message_zh;
    }).catch(function () {});
  });
  $("confirm").addEventListener("click", function () { clearTimeout(hideTimer); $("confirm").hidden = true; });
  document.addEventListener("pointerdown", function () { lastTouch = Date.now(); }, true);
  document.addEventListener("contextmenu", function (ev) { ev.preventDefault(); });

  setInterval(function () {
    renderClock();
    if (Date.now() - lastTouch > IDLE_RESET_MS && (keypadOpen || lang !== defaultLang)) {
      lang = defaultLang;
      keypadOpen = false;
      applyLang();
    }
  }, 1000);

  function connect() {
    var es = new EventSource("/events");
    es.addEventListener("open", function () { lastShownN = 0; body.dataset.stream = "open"; });
    es.addEventListener("error", function () { body.dataset.stream = "reconnecting"; });
    es.addEventListener("state", function (ev) { onState(JSON.parse(ev.data)); });
    es.addEventListener("tap", function (ev) {
      var o = JSON.parse(ev.data);
      window.__baodao.received.push({ n: o.n, t: performance.timeOrigin + performance.now() });
      if (window.__baodao.received.length > 2000) window.__baodao.received.splice(0, 1000);
      showOutcome(o);
    });
  }

  applyLang();
  setupSimulator();
  connect();
})();
