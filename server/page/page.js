// quiesce status page script. Without it the page is a read-only,
// server-rendered snapshot. With it: a token field (the token is kept in
// sessionStorage only, for this tab), and with a token the drain request,
// Drain / Cancel buttons (POST /api/gateway/drain) and live updates through
// GET /api/gateway/status?wait=change&after=<seq> long-polls, each
// re-issued as the previous one answers. Every value reaches the page
// through textContent, never as markup.
"use strict";

(function () {
  const TOKEN_KEY = "quiesce.token";
  const POLL_TIMEOUT = "30s"; // the server's wait
  const REQUEST_LIMIT_MS = 45000; // a request that outlives the wait is dead
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 10000;

  const $ = (id) => document.getElementById(id);
  const el = {
    state: $("state"),
    description: $("state-description"),
    inFlight: $("in-flight"),
    oldest: $("oldest"),
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
    requestedAt: $("drain-requested-at"),
    requestID: $("drain-request-id"),
    suppressed: $("drain-suppress"),
    expiresAt: $("drain-expires-at"),
    suppress: $("suppress"),
    drainBtn: $("drain-btn"),
    cancelBtn: $("cancel-btn"),
    notice: $("notice"),
    error: $("error"),
  };

  const DRAIN_STATUS = {
    active: "active: the gateway drains for it",
    stale: "stale: from an earlier instance (another boot or container); ignored",
    expired: "expired: older than the maximum drain age; ignored",
    contentless: "contentless: the marker file cannot be read as a request; it drains until it expires",
  };

  let current = null; // the last status shown
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

  // ---- formatting (mirrors the server's formatAge) ----
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

  function render(st) {
    current = st;
    renderState(st.state);
    el.inFlight.textContent = String(st.active_agents);
    el.oldest.textContent = formatAge(st.oldest_turn_seconds) || "none in flight";
    el.freshness.textContent = "As of " + new Date().toLocaleTimeString() + " (live).";
    const d = st.drain;
    el.none.hidden = !!d;
    el.info.hidden = !d;
    if (d) {
      el.status.textContent = DRAIN_STATUS[d.status] || text(d.status);
      el.principal.textContent = text(d.principal);
      el.requestedAt.textContent = formatTime(d.requested_at);
      el.requestID.textContent = text(d.request_id);
      el.suppressed.textContent = d.suppress_notification ? "yes" : "no";
      el.expiresAt.textContent = formatTime(d.expires_at);
    }
    updateButtons();
  }

  function updateButtons() {
    const st = current ? current.state : "";
    const open = st === "running" || st === "draining";
    el.drainBtn.disabled = busy || !open;
    el.drainBtn.textContent = st === "draining" ? "Drain again (refresh)" : "Drain";
    el.cancelBtn.disabled = busy || !open || !(st === "draining" || (current && current.drain));
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
      if (action === "drain") {
        body.suppress_notification = el.suppress.checked;
      } else if (current && current.drain && current.drain.status === "active" && current.drain.request_id) {
        // Cancel the drain shown here, not one someone else started since.
        body.request_id = current.drain.request_id;
      }
      const res = await api("POST", "/api/gateway/drain", body, null);
      if (action === "drain") {
        notice("Drain requested (request id " + text(res.request_id) + "); the gateway is " + res.state + ".");
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
  el.cancelBtn.addEventListener("click", () => control("cancel"));
  start();
})();
