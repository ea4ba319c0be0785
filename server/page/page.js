// quiesce status page script. Without it the page is a read-only,
// server-rendered snapshot. With it: a token field (the token is kept in
// sessionStorage only, for this tab), and with a token the drain request
// (who, why, its request id, suppress flag and expiry countdown), Drain /
// Drain again (refresh) / Cancel controls (POST /api/gateway/drain) that
// act on the drain shown, pid, uptime and the agent's failures, the turns
// in flight (GET /api/gateway/turns) and the last lifecycle events (GET
// /api/gateway/history), and live updates through
// GET /api/gateway/status?wait=change&after=<seq> long-polls, each
// re-issued as the previous one answers. Ages and countdowns tick every
// second. Every value reaches the page through textContent, never as
// markup.
"use strict";

(function () {
  const TOKEN_KEY = "quiesce.token";
  const POLL_TIMEOUT = "30s"; // the server's wait
  const REQUEST_LIMIT_MS = 45000; // a request that outlives the wait is dead
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 10000;
  const TICK_MS = 1000; // ages and countdowns

  const $ = (id) => document.getElementById(id);
  const el = {
    state: $("state"),
    description: $("state-description"),
    since: $("state-since"),
    version: $("version"),
    inFlight: $("in-flight"),
    oldest: $("oldest"),
    spooled: $("spooled"),
    webhookLabel: $("webhook-pending-label"),
    webhook: $("webhook-pending"),
    freshness: $("freshness"),
    control: $("control"),
    auth: $("auth"),
    token: $("token"),
    forget: $("token-forget"),
    live: $("live"),
    panel: $("drain-panel"),
    none: $("drain-none"),
    info: $("drain-info"),
    status: $("drain-status"),
    principal: $("drain-principal"),
    reasonShown: $("drain-reason"),
    requestedAt: $("drain-requested-at"),
    requestID: $("drain-request-id"),
    suppressed: $("drain-suppress"),
    expiresAt: $("drain-expires-at"),
    suppress: $("suppress"),
    reason: $("reason"),
    drainBtn: $("drain-btn"),
    cancelBtn: $("cancel-btn"),
    controlNote: $("control-note"),
    notice: $("notice"),
    pid: $("pid"),
    uptime: $("uptime"),
    agent: $("agent"),
    agentError: $("agent-error"),
    turnsPanel: $("turns-panel"),
    turnsNone: $("turns-none"),
    turns: $("turns"),
    turnsBody: $("turns-body"),
    historyPanel: $("history-panel"),
    history: $("history"),
    error: $("error"),
  };

  const DRAIN_STATUS = {
    active: "active: the gateway drains for it",
    stale: "stale: from an earlier instance (another boot or container); ignored",
    expired: "expired: older than the maximum drain age; ignored",
    contentless: "contentless: the marker file cannot be read as a request; it drains until it expires",
  };

  let current = null; // the last status shown
  let receivedAt = 0; // Date.now() when current arrived
  let turnsShown = []; // the last turns list, with receivedAt for their ages
  let synced = null; // request id (or "" for none) of the drain the controls were last set from
  let generation = 0; // bumped to end the running poll loop
  let inflight = null; // AbortController of the running poll request
  let busy = false; // a drain or cancel request is on its way

  // ---- storage: sessionStorage only, never localStorage or cookies ----
  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }
  function setToken(t) {
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      showError("This browser does not let the page keep the token: " + e.message);
    }
  }

  // ---- messages ----
  function showError(msg) {
    el.error.textContent = msg;
    el.error.hidden = false;
  }
  function clearError() {
    el.error.textContent = "";
    el.error.hidden = true;
  }
  function notice(msg) {
    el.notice.textContent = msg;
  }

  // ---- formatting (mirrors the server's formatAge and formatSince) ----
  function formatSince(seconds) {
    let s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    s %= 60;
    if (h > 0) return h + "h" + m + "m" + s + "s";
    if (m > 0) return m + "m" + s + "s";
    return s + "s";
  }
  function secondsSince(iso) {
    const t = Date.parse(iso || "");
    return isNaN(t) ? null : (Date.now() - t) / 1000;
  }
  function formatAge(seconds) {
    if (!(seconds > 0)) return "";
    if (seconds < 10) return seconds.toFixed(1) + " s";
    let s = Math.round(seconds);
    if (s < 60) return s + " s";
    let m = Math.floor(s / 60);
    s %= 60;
    if (m < 60) return m + " min " + s + " s";
    const h = Math.floor(m / 60);
    m %= 60;
    return h + " h " + m + " min";
  }
  function formatTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d.getTime()) || d.getUTCFullYear() <= 1) return "—";
    return d.toISOString().replace(".000Z", "Z") + " (" + d.toLocaleString() + ")";
  }
  function text(v) {
    return v === undefined || v === null || v === "" ? "—" : String(v);
  }

  // ---- rendering ----
  const KNOWN = ["running", "draining", "shutting_down", "stopped"];

  function renderState(state) {
    el.state.textContent = state;
    el.state.dataset.state = state;
    el.state.className = "badge " + (KNOWN.includes(state) ? "state-" + state : "state-unknown");
    document.title = "quiesce: " + state;
    let desc = "";
    document.querySelectorAll("svg.lifecycle g.state").forEach((g) => {
      const on = g.dataset.state === state;
      g.classList.toggle("current", on);
      if (on) desc = g.dataset.description || "";
    });
    el.description.textContent = desc;
  }

  // activeDrain returns the drain request the gateway drains for, or null.
  function activeDrain() {
    const d = current && current.drain;
    return d && d.status === "active" ? d : null;
  }

  function render(st) {
    current = st;
    receivedAt = Date.now();
    renderState(st.state);
    el.since.dataset.since = st.state_since || "";
    if (st.version) el.version.textContent = "version " + st.version;
    el.inFlight.textContent = String(st.active_agents);
    el.spooled.textContent = String(st.spooled_events || 0);
    const pending = typeof st.webhook_pending === "number";
    el.webhookLabel.hidden = !pending;
    el.webhook.hidden = !pending;
    if (pending) el.webhook.textContent = String(st.webhook_pending);
    el.freshness.textContent = "As of " + new Date().toLocaleTimeString() + " (live).";
    const d = st.drain;
    el.none.hidden = !!d;
    el.info.hidden = !d;
    if (d) {
      el.status.textContent = DRAIN_STATUS[d.status] || text(d.status);
      el.principal.textContent = text(d.principal);
      el.reasonShown.textContent = text(d.reason);
      el.requestedAt.textContent = formatTime(d.requested_at);
      el.requestID.textContent = text(d.request_id);
      el.suppressed.textContent = d.suppress_notification ? "yes" : "no";
    }
    el.pid.textContent = text(st.pid);
    const a = st.agent;
    el.agent.textContent = a ? a.kind + ", " + a.failures + (a.failures === 1 ? " failure" : " failures") + " since start" : "—";
    el.agentError.textContent = a && a.last_error ? formatTime(a.last_error_at) + ": " + a.last_error : "none";
    syncControls();
    updateButtons();
    tick();
  }

  // syncControls sets the suppress box and the reason field from the
  // active drain whenever a different drain becomes active (or none is),
  // so a refresh sends what the operator asked for; edits made to them
  // while the same drain stays active are kept.
  function syncControls() {
    const d = activeDrain();
    const id = d ? d.request_id || "" : null;
    if (id === synced) return;
    synced = id;
    el.suppress.checked = !!(d && d.suppress_notification);
    el.reason.value = (d && d.reason) || "";
  }

  // tick updates what changes with time alone: how long the state has
  // lasted, the drain's expiry countdown, the uptime and turns' ages.
  function tick() {
    if (!current) return;
    const since = secondsSince(el.since.dataset.since);
    el.since.textContent = since === null ? "" : current.state + " for " + formatSince(since);
    const elapsed = (Date.now() - receivedAt) / 1000;
    el.oldest.textContent = formatAge(current.active_agents > 0 ? current.oldest_turn_seconds + elapsed : 0) || "none in flight";
    el.uptime.textContent = typeof current.uptime_seconds === "number" ? formatSince(current.uptime_seconds + elapsed) : "—";
    const d = current.drain;
    if (d) {
      const left = d.expires_at ? -secondsSince(d.expires_at) : null;
      if (left === null || isNaN(left)) el.expiresAt.textContent = "unknown (its age is measured from the file's time)";
      else if (left > 0) el.expiresAt.textContent = "in " + formatSince(left) + ", at " + formatTime(d.expires_at);
      else el.expiresAt.textContent = "expired at " + formatTime(d.expires_at);
    }
    const rows = el.turnsBody.rows;
    for (let i = 0; i < rows.length && i < turnsShown.length; i++) {
      const t = turnsShown[i];
      rows[i].cells[1].textContent = formatAge(t.age_seconds + (Date.now() - t.receivedAt) / 1000) || "0.0 s";
    }
  }

  function updateButtons() {
    const st = current ? current.state : "";
    const open = st === "running" || st === "draining";
    const d = activeDrain();
    el.drainBtn.disabled = busy || !open;
    el.cancelBtn.disabled = busy || !open || !(st === "draining" || (current && current.drain));
    if (d && d.request_id) {
      el.drainBtn.textContent = "Drain again (refresh)";
      el.controlNote.textContent = "Drain again refreshes request " + d.request_id +
        " (its expiry starts over) with the suppress flag and reason set here; Cancel cancels it.";
    } else if (d || st === "draining") {
      el.drainBtn.textContent = "Drain again (replace)";
      el.controlNote.textContent = "The active drain has no request id: Drain again replaces it with a new request.";
    } else {
      el.drainBtn.textContent = "Drain";
      el.controlNote.textContent = "Drain stops new turns; the turns in flight finish. Cancel undoes it.";
    }
  }

  // ---- turns in flight and lifecycle events (token only) ----
  function renderTurns(turns) {
    const now = Date.now();
    turnsShown = turns.map((t) => Object.assign({ receivedAt: now }, t));
    el.turnsNone.hidden = turns.length > 0;
    el.turns.hidden = turns.length === 0;
    const body = document.createElement("tbody");
    body.id = "turns-body";
    for (const t of turns) {
      const tr = body.insertRow();
      tr.dataset.session = t.session;
      const cells = [t.session, formatAge(t.age_seconds) || "0.0 s", t.streaming ? "yes" : "no",
        t.system ? "event " + text(t.event_id) : "user", text(t.turn_id)];
      for (const c of cells) tr.insertCell().textContent = c;
    }
    el.turnsBody.replaceWith(body);
    el.turnsBody = body;
  }

  function describeEvent(e) {
    switch (e.kind) {
      case "start":
        return "gateway started";
      case "transition":
        return e.from + " → " + e.to + " (" + e.event + ")";
      case "drain": {
        let s = "drain requested by " + text(e.principal);
        if (e.reason) s += ': "' + e.reason + '"';
        s += " (request " + text(e.request_id) + (e.suppress_notification ? ", broadcast suppressed" : "") + ")";
        if (e.was_draining) s += ", refreshing or replacing the active one";
        return s;
      }
      case "cancel":
        return (e.was_draining ? "drain cancelled" : "cancel: no drain was active") +
          (e.request_id ? " (request " + e.request_id + ")" : "");
      case "shutdown":
        return (e.force ? "shutdown forced" : "shutdown started") + " (" + text(e.shutdown_id) + ")";
      case "interrupted": {
        const more = e.count > (e.sessions || []).length ? " and " + (e.count - e.sessions.length) + " more" : "";
        return e.count + (e.count === 1 ? " session" : " sessions") + " cut off: " + (e.sessions || []).join(", ") + more;
      }
      default:
        return text(e.kind);
    }
  }

  function renderHistory(events) {
    const list = document.createElement("ol");
    list.id = "history";
    list.reversed = true;
    for (let i = events.length - 1; i >= 0; i--) {
      const e = events[i];
      const li = document.createElement("li");
      li.dataset.kind = e.kind;
      const at = document.createElement("time");
      at.dateTime = e.at;
      at.textContent = formatTime(e.at);
      li.append(at, " " + describeEvent(e));
      list.append(li);
    }
    el.history.replaceWith(list);
    el.history = list;
  }

  // refreshLists fetches the turns and the history after a status
  // change; a failure shows in the error line and the next change retries.
  async function refreshLists(gen) {
    try {
      const [turns, hist] = await Promise.all([
        api("GET", "/api/gateway/turns", null, null),
        api("GET", "/api/gateway/history", null, null),
      ]);
      if (gen !== generation) return;
      el.turnsPanel.hidden = false;
      el.historyPanel.hidden = false;
      renderTurns(turns.turns || []);
      renderHistory(hist.events || []);
    } catch (e) {
      if (gen !== generation) return;
      showError("Could not load the turns and lifecycle events: " + e.message);
    }
  }

  // ---- the API ----
  class APIError extends Error {
    constructor(status, body) {
      super((body && body.message) || "HTTP " + status);
      this.status = status;
      this.code = body && body.error;
    }
  }

  async function api(method, path, body, signal) {
    const ctl = new AbortController();
    const limit = setTimeout(() => ctl.abort(), REQUEST_LIMIT_MS);
    const stop = () => ctl.abort();
    if (signal) signal.addEventListener("abort", stop, { once: true });
    try {
      const opts = {
        method: method,
        headers: { Authorization: "Bearer " + getToken(), Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
        signal: ctl.signal,
      };
      if (body !== null) {
        opts.headers["Content-Type"] = "application/json";
        opts.body = JSON.stringify(body);
      }
      const resp = await fetch(path, opts);
      let data = null;
      try {
        data = await resp.json();
      } catch (e) {
        data = null;
      }
      if (!resp.ok) throw new APIError(resp.status, data);
      return data;
    } finally {
      clearTimeout(limit);
      if (signal) signal.removeEventListener("abort", stop);
    }
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }

  // ---- live updates: one long-poll at a time, re-issued as it answers ----
  async function pollLoop(gen) {
    let after = null; // null: ask for the status without waiting
    let retry = RETRY_MIN_MS;
    while (gen === generation) {
      const ctl = new AbortController();
      inflight = ctl;
      try {
        const path = after === null
          ? "/api/gateway/status"
          : "/api/gateway/status?wait=change&after=" + encodeURIComponent(after) + "&timeout=" + POLL_TIMEOUT;
        const st = await api("GET", path, null, ctl.signal);
        if (gen !== generation) return;
        clearError();
        render(st);
        refreshLists(gen);
        el.live.textContent = "Live: following changes.";
        after = st.seq;
        retry = RETRY_MIN_MS;
        if (st.state === "stopped") {
          // Terminal: the server answers at once; look again later (a
          // supervisor may start a new gateway here).
          el.live.textContent = "The gateway has stopped.";
          await sleep(RETRY_MAX_MS, ctl.signal);
          after = null;
        }
      } catch (e) {
        if (gen !== generation) return;
        if (e instanceof APIError && e.status === 401) {
          setToken("");
          showError("The token was refused (" + e.message + "). Enter a valid token.");
          el.panel.hidden = true;
          el.turnsPanel.hidden = true;
          el.historyPanel.hidden = true;
          el.live.textContent = "Not live: no valid token.";
          generation++;
          return;
        }
        const why = e instanceof APIError ? e.message : "cannot reach the gateway (" + e.message + ")";
        showError("Live updates paused: " + why + ". Retrying in " + Math.round(retry / 1000 * 10) / 10 + " s.");
        el.live.textContent = "Not live: retrying.";
        await sleep(retry, ctl.signal);
        retry = Math.min(retry * 2, RETRY_MAX_MS);
        after = null; // the gateway may have restarted: start from its status
      }
    }
  }

  function start() {
    stopPolling();
    if (!getToken()) {
      el.panel.hidden = true;
      el.turnsPanel.hidden = true;
      el.historyPanel.hidden = true;
      el.live.textContent = "Enter a token to see the drain request, drain or cancel, and follow changes live.";
      return;
    }
    el.panel.hidden = false;
    el.live.textContent = "Connecting…";
    pollLoop(++generation);
  }

  function stopPolling() {
    generation++;
    if (inflight) inflight.abort();
    inflight = null;
  }

  // ---- drain and cancel ----
  async function control(action) {
    busy = true;
    updateButtons();
    clearError();
    notice(action === "drain" ? "Asking the gateway to drain…" : "Asking the gateway to cancel the drain…");
    try {
      const body = { action: action };
      const d = activeDrain();
      if (d && d.request_id) {
        // Act on the drain shown here: a refresh names it (so the gateway
        // keeps it, renewing its expiry), a cancel cancels it and not one
        // someone else started since.
        body.request_id = d.request_id;
      }
      if (action === "drain") {
        // What the controls say, which start as the active drain's own
        // flag and reason (syncControls): a refresh keeps what was asked.
        body.suppress_notification = el.suppress.checked;
        const reason = el.reason.value.trim();
        if (reason || (d && d.reason)) body.reason = reason;
      }
      const res = await api("POST", "/api/gateway/drain", body, null);
      if (action === "drain") {
        const what = d && d.request_id && res.request_id === d.request_id ? "Drain refreshed" : "Drain requested";
        notice(what + " (request id " + text(res.request_id) + ", suppress notification " +
          (res.suppress_notification ? "yes" : "no") + "); the gateway is " + res.state + ".");
      } else {
        notice(res.was_draining ? "Drain cancelled; the gateway is " + res.state + "." : "There was no drain to cancel.");
      }
    } catch (e) {
      notice("");
      if (e instanceof APIError && e.status === 401) {
        setToken("");
        start();
      }
      showError((action === "drain" ? "Drain" : "Cancel") + " failed: " + e.message);
    } finally {
      busy = false;
      updateButtons();
    }
  }

  // ---- wiring ----
  el.control.hidden = false;
  el.auth.addEventListener("submit", (ev) => {
    ev.preventDefault(); // never submit: the token must not land in a URL
    const t = el.token.value.trim();
    el.token.value = "";
    if (!t) {
      showError("Enter a token first.");
      return;
    }
    clearError();
    setToken(t);
    start();
  });
  el.forget.addEventListener("click", () => {
    setToken("");
    el.token.value = "";
    clearError();
    notice("");
    start();
  });
  el.drainBtn.addEventListener("click", () => control("drain"));
  setInterval(tick, TICK_MS);
  el.cancelBtn.addEventListener("click", () => control("cancel"));
  start();
})();
