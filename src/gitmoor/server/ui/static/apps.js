// The application list's live updates, over server-sent events
// (GET /api/v1/stream/applications: "application" events carry an app's summary,
// "deleted" its name, "logout" says the session ended).
//
// Each row or card carries data-sig: the fields it shows, as the server joined
// them (routes.py SIG_FIELDS, listed in #app-list's data-sig-fields). A summary
// whose signature equals its row's needs nothing: the stream's first burst (one
// summary per app) costs no request when the page is current. Changed names are
// collected for a moment and fetched in one request from /ui/app-rows under the
// page's filters; each answer row replaces its old self in place, is inserted in
// name order, or, when the answer lacks it (deleted, or no longer matching the
// filters), its row leaves the list. The counts come with every answer.
(() => {
  "use strict";
  const BATCH_MS = 150;
  const MAX_NAMES = 200; // routes.py MAX_ROW_NAMES
  const EXACT_FILTERS = { project: "project", sync: "sync", health: "health", cluster: "cluster", namespace: "namespace", repo: "repoURL" };

  const form = document.getElementById("app-filters");
  const live = document.getElementById("live");
  const known = new Map(); // name -> signature of what the page shows (or of an app not shown)
  const pending = new Set();
  let timer = null;
  let inFlight = false;
  let source = null;

  const list = () => document.getElementById("app-list");
  const items = () => document.getElementById("app-items");
  const fields = () => JSON.parse(list().dataset.sigFields || "[]");
  const norm = (v) => (v === true ? "1" : v === false ? "0" : v === null || v === undefined ? "" : String(v));
  const signature = (s) => fields().map((f) => norm(s[f])).join("\u001f");
  const elementOf = (root, name) => root.querySelector(`[data-app="${CSS.escape(name)}"]`);

  function setLive(state, text) {
    if (!live) return;
    live.dataset.state = state;
    live.querySelector(".live-text").textContent = text;
    const use = live.querySelector("use");
    if (use) use.setAttribute("href", use.getAttribute("href").replace(/#.*$/, state === "live" ? "#live" : "#offline"));
  }

  // Start from what the server rendered (again after each swap of the whole list).
  function rememberRendered() {
    known.clear();
    for (const el of list().querySelectorAll("[data-app]")) known.set(el.dataset.app, el.dataset.sig);
  }

  // Could this summary be shown under the page's filters? Only the exact filters
  // are checked here; the server decides the search and everything else.
  function mayMatch(summary) {
    if (!form) return true;
    const data = new FormData(form);
    for (const [param, field] of Object.entries(EXACT_FILTERS)) {
      const want = data.get(param);
      if (want && summary[field] !== want) return false;
    }
    return true;
  }

  function queue(name) {
    pending.add(name);
    if (!timer) timer = setTimeout(flush, BATCH_MS);
  }

  function filterParams() {
    const params = new URLSearchParams();
    if (form) {
      for (const [k, v] of new FormData(form)) if (v) params.append(k, v);
    }
    params.set("view", list().dataset.view);
    return params;
  }

  function insertSorted(container, el) {
    const name = el.dataset.app;
    for (const other of container.querySelectorAll(":scope > [data-app]")) {
      if (other.dataset.app.localeCompare(name, "en") > 0) {
        container.insertBefore(el, other);
        return;
      }
    }
    container.appendChild(el);
  }

  function place(names, fragment) {
    const container = items();
    if (!container) return;
    for (const name of names) {
      const fresh = elementOf(fragment, name);
      const old = elementOf(container, name);
      if (fresh) {
        known.set(name, fresh.dataset.sig);
        if (old && old.dataset.sig === fresh.dataset.sig) continue;
        // Keep the keyboard where it was: a focused link in a redrawn row stays focused.
        const focused = old && old.contains(document.activeElement) ? document.activeElement : null;
        fresh.classList.add("updated");
        if (old) old.replaceWith(fresh);
        else insertSorted(container, fresh);
        if (focused && focused.getAttribute("href")) {
          const again = fresh.querySelector(`[href="${CSS.escape(focused.getAttribute("href"))}"]`);
          if (again) again.focus();
        }
      } else if (old) {
        old.remove();
      }
    }
    const counts = fragment.querySelector("#app-counts");
    const current = document.getElementById("app-counts");
    if (counts && current) current.replaceWith(counts);
    const empty = document.getElementById("app-empty");
    if (empty) empty.hidden = container.querySelector("[data-app]") !== null;
  }

  async function flush() {
    timer = null;
    if (inFlight) { timer = setTimeout(flush, BATCH_MS); return; }
    const names = Array.from(pending).slice(0, MAX_NAMES);
    names.forEach((n) => pending.delete(n));
    if (!names.length) return;
    inFlight = true;
    try {
      const params = filterParams();
      names.forEach((n) => params.append("name", n));
      const view = list().dataset.view;
      const response = await fetch(`/ui/app-rows?${params}`, { credentials: "same-origin", headers: { "HX-Request": "true", "HX-Current-URL": window.location.href } });
      if (response.status === 401) { toLogin(); return; }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const html = await response.text();
      if (list().dataset.view !== view) return; // the view changed meanwhile: that swap is current
      const template = document.createElement("template");
      template.innerHTML = html;
      if (window.htmx) window.htmx.process(template.content);
      place(names, template.content);
    } catch (err) {
      names.forEach((n) => { known.delete(n); pending.add(n); }); // try again with the next change
      if (window.gitmoorToast) window.gitmoorToast(`Live update failed: ${err.message}`);
    } finally {
      inFlight = false;
      if (pending.size && !timer) timer = setTimeout(flush, BATCH_MS);
    }
  }

  function toLogin() {
    const here = window.location.pathname + window.location.search;
    window.location.assign(`/login?next=${encodeURIComponent(here)}`);
  }

  function onApplication(event) {
    const summary = JSON.parse(event.data);
    const sig = signature(summary);
    if (known.get(summary.name) === sig) return;
    const shown = elementOf(list(), summary.name) !== null;
    known.set(summary.name, sig);
    if (shown || mayMatch(summary)) queue(summary.name);
  }

  function onDeleted(event) {
    const { name } = JSON.parse(event.data);
    known.delete(name);
    if (elementOf(list(), name)) queue(name);
  }

  function connect() {
    source = new EventSource("/api/v1/stream/applications");
    source.addEventListener("open", () => setLive("live", "Live"));
    source.addEventListener("application", onApplication);
    source.addEventListener("deleted", onDeleted);
    source.addEventListener("logout", () => { source.close(); toLogin(); });
    source.addEventListener("error", async () => {
      setLive("offline", "Reconnecting…");
      if (source.readyState !== EventSource.CLOSED) return; // the browser retries by itself
      // Closed for good (an error status): logged out, or the server is away.
      const r = await fetch("/api/v1/session/userinfo", { credentials: "same-origin" }).catch(() => null);
      if (r && r.status === 401) { toLogin(); return; }
      setTimeout(connect, 3000);
    });
  }

  // The filter form swaps #app-list as a whole (htmx): start again from what it shows.
  let shownList = list();
  document.addEventListener("htmx:afterSettle", () => {
    if (list() !== shownList) {
      shownList = list();
      rememberRendered();
    }
  });

  rememberRendered();
  connect();
})();
