// The application page's behaviour. The server renders every piece of HTML
// (htmx swaps the partials); this file only wires what HTML alone cannot do:
// the JSON operations of the API (sync, rollback, refresh, terminate), the
// live updates of the SSE stream, the node panel and the tree's collapse state.
// No framework: plain DOM, as the README says of the UI.
(() => {
  "use strict";

  const page = document.querySelector("[data-app-page]");
  if (!page) return;
  const appName = page.dataset.app;
  const base = `/applications/${encodeURIComponent(appName)}`;
  const api = `/api/v1${base}`;

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  // The CSRF token base.html puts in a meta tag (and in the body's hx-headers,
  // which htmx sends); every fetch() that changes state sends it too.
  const csrf = () => {
    const meta = $('meta[name="csrf-token"]')?.content;
    if (meta) return meta;
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (_) {
      return "";
    }
  };

  // ------------------------------------------------------------ messages

  const notice = $("#app-notice");
  function say(text, isError = false) {
    if (!notice) return;
    notice.textContent = text;
    notice.dataset.kind = isError ? "error" : "ok";
    notice.setAttribute("role", isError ? "alert" : "status");
    notice.hidden = !text;
  }

  async function call(path, body) {
    let response;
    try {
      response = await fetch(api + path, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify(body ?? {}),
      });
    } catch (e) {
      return { ok: false, status: 0, text: `the server did not answer (${e})` };
    }
    if (response.status === 401) {
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    }
    let text = `${response.status} ${response.statusText}`;
    try {
      const data = await response.json();
      if (typeof data.message === "string") text = data.message;
      else if (typeof data.detail === "string") text = data.detail;
      else if (data.detail) text = JSON.stringify(data.detail);
    } catch (_) {
      /* not JSON: keep the status line */
    }
    return { ok: response.ok, status: response.status, text };
  }

  // ------------------------------------------------------------ live updates

  // The fields whose change the page shows; the first SSE message (the
  // snapshot) is compared with what the server rendered.
  const rendered = JSON.parse($("#app-summary")?.textContent || "{}");
  const keyOf = (s) =>
    JSON.stringify([
      s.sync, s.revision, s.health, s.healthMessage, s.operationPhase, s.operationMessage,
      s.automated, s.suspended, s.resources, s.conditions, s.reconciledAt,
    ]);
  let lastKey = keyOf(rendered);
  let reloadTimer = 0;

  function showTerminate(phase) {
    const button = $("#terminate-button");
    if (button) button.hidden = !(phase === "Running" || phase === "Terminating");
  }
  showTerminate(rendered.operationPhase || "");

  function reloadParts() {
    // At most one reload per quarter second: a running sync writes its progress
    // often, and each write would otherwise reload every part.
    if (reloadTimer) return;
    reloadTimer = setTimeout(() => {
      reloadTimer = 0;
      htmx.trigger(document.body, "app-changed");
      if (!$("#sync-dialog")?.open) htmx.trigger(document.body, "resources-changed");
    }, 250);
  }

  function connect() {
    const source = new EventSource(
      `/api/v1/stream/applications?name=${encodeURIComponent(appName)}`,
    );
    source.addEventListener("application", (event) => {
      const s = JSON.parse(event.data);
      if (s.name !== appName) return;
      showTerminate(s.operationPhase);
      const key = keyOf(s);
      if (key === lastKey) return;
      lastKey = key;
      page.dataset.sync = s.sync;
      page.dataset.health = s.health;
      page.dataset.phase = s.operationPhase;
      reloadParts();
    });
    source.addEventListener("deleted", () => {
      say("This application was deleted.", true);
      source.close();
    });
    source.addEventListener("logout", () => {
      source.close();
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    });
    // EventSource retries a dropped stream by itself; an answer that is not a
    // stream (401 after the session ended, a 5xx) closes it for good. Then ask
    // whether the session stands: go to the login page, or try again later.
    source.addEventListener("error", async () => {
      if (source.readyState !== EventSource.CLOSED) return;
      const r = await fetch("/api/v1/session/userinfo", { credentials: "same-origin" }).catch(
        () => null,
      );
      if (r && r.status === 401) {
        location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
      } else {
        setTimeout(connect, 5000);
      }
    });
  }
  page.dataset.sync = rendered.sync || "";
  page.dataset.health = rendered.health || "";
  page.dataset.phase = rendered.operationPhase || "";
  connect();

  // ------------------------------------------------------------ tree

  // Collapsed nodes survive a reload of the tree (by their stable ids).
  const collapsed = new Set();

  function setExpanded(toggle, expanded) {
    toggle.setAttribute("aria-expanded", String(expanded));
    const children = document.getElementById(toggle.getAttribute("aria-controls"));
    if (children) children.hidden = !expanded;
    const label = toggle.dataset.label || "";
    toggle.setAttribute("aria-label", `${expanded ? "Collapse" : "Expand"} ${label}`);
  }

  document.addEventListener("click", (event) => {
    const toggle = event.target.closest("[data-tree-toggle]");
    if (!toggle) return;
    const expanded = toggle.getAttribute("aria-expanded") !== "true";
    setExpanded(toggle, expanded);
    if (expanded) collapsed.delete(toggle.id);
    else collapsed.add(toggle.id);
  });

  // A swap replaces the element that had focus; give focus back to its
  // successor (same id), so a keyboard user is not thrown to the top.
  let focusedId = null;
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    const active = document.activeElement;
    focusedId = target && active && target.contains(active) && active.id ? active.id : null;
    // The partials answer 403/404/502 with a message meant for the user: show it.
    if (event.detail.xhr.status >= 400 && target && page.contains(target)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.body.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target && target.id === "tree") {
      for (const id of collapsed) {
        const toggle = document.getElementById(id);
        if (toggle) setExpanded(toggle, false);
      }
    }
    if (focusedId) {
      document.getElementById(focusedId)?.focus();
      focusedId = null;
    }
  });

  // ------------------------------------------------------------ node panel

  const panel = $("#node-panel");
  const panelBody = $("#panel-body");
  let selected = null;
  let openerId = "";

  // The dialog gives the focus back to its opener; if a live reload of the tree
  // replaced that button meanwhile, give it to its successor (same id).
  panel?.addEventListener("close", () => {
    const active = document.activeElement;
    if (!active || active === document.body) document.getElementById(openerId)?.focus();
  });

  function query(extra = {}) {
    const params = new URLSearchParams({
      group: selected.group,
      kind: selected.kind,
      namespace: selected.namespace,
      name: selected.name,
      ...extra,
    });
    return params.toString();
  }

  function selectTab(tab) {
    for (const t of $$('[role="tab"]', panel)) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
    }
    panelBody.setAttribute("aria-labelledby", tab.id);
    htmx.ajax("GET", `${base}/panel/${tab.dataset.tab}?${query()}`, {
      target: "#panel-body",
      swap: "innerHTML",
    });
  }

  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-open-node]");
    if (!opener) return;
    openerId = opener.id;
    selected = {
      group: opener.dataset.group || "",
      kind: opener.dataset.kind,
      namespace: opener.dataset.namespace || "",
      name: opener.dataset.name,
    };
    $("#panel-title").textContent = `${selected.kind} ${selected.name}`;
    $("#panel-subtitle").textContent = selected.namespace
      ? `namespace ${selected.namespace}`
      : "cluster-scoped";
    const logsTab = $("#tab-logs");
    logsTab.hidden = selected.kind !== "Pod";
    panelBody.innerHTML = "";
    panel.showModal();
    selectTab($("#tab-live"));
  });

  panel?.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) selectTab(tab);
    // A click on the backdrop (outside the drawer's box) closes it.
    if (event.target === panel) panel.close();
  });

  // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
  panel?.addEventListener("keydown", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (!tab || !["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
    const tabs = $$('[role="tab"]', panel).filter((t) => !t.hidden);
    let i = tabs.indexOf(tab);
    if (event.key === "ArrowLeft") i = (i - 1 + tabs.length) % tabs.length;
    else if (event.key === "ArrowRight") i = (i + 1) % tabs.length;
    else if (event.key === "Home") i = 0;
    else i = tabs.length - 1;
    tabs[i].focus();
    selectTab(tabs[i]);
    event.preventDefault();
  });

  // ------------------------------------------------------------ operations

  const syncDialog = $("#sync-dialog");
  $("#sync-button")?.addEventListener("click", () => {
    $("#sync-error").hidden = true;
    syncDialog.showModal();
  });

  // "All objects" checks or clears every box, and follows them: checked only
  // when all are. (The list is reloaded live, so listen on the dialog.)
  syncDialog?.addEventListener("change", (event) => {
    const boxes = $$("[data-sync-resource]", syncDialog);
    const all = $("#sync-all", syncDialog);
    if (event.target === all) {
      for (const box of boxes) box.checked = all.checked;
    } else if (event.target.matches("[data-sync-resource]") && all) {
      all.checked = boxes.every((b) => b.checked);
    }
  });

  $("#sync-form")?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    if (event.submitter && event.submitter.value === "cancel") {
      syncDialog.close();
      return;
    }
    const boxes = $$("[data-sync-resource]", form);
    const chosen = boxes.filter((b) => b.checked);
    const error = $("#sync-error");
    if (boxes.length && !chosen.length) {
      error.textContent = "Select at least one resource to sync.";
      error.hidden = false;
      return;
    }
    const body = {
      revision: form.elements.revision.value.trim(),
      prune: form.elements.prune.checked,
      dryRun: form.elements.dryRun.checked,
      // unchecked: the app's own choice (its ForceConflicts sync option), not a refusal
      force: form.elements.force.checked ? true : null,
      // A sync of every object is a full sync (its history entry can be rolled
      // back to); only a subset makes it selective, as in Argo CD.
      resources:
        chosen.length === boxes.length
          ? null
          : chosen.map((b) => ({
              group: b.dataset.group,
              kind: b.dataset.kind,
              namespace: b.dataset.namespace,
              name: b.dataset.name,
            })),
    };
    const result = await call("/sync", body);
    if (!result.ok) {
      error.textContent = result.text;
      error.hidden = false;
      return;
    }
    syncDialog.close();
    say(result.text);
  });

  for (const button of $$("[data-refresh]")) {
    button.addEventListener("click", async () => {
      const result = await call("/refresh", { type: button.dataset.refresh });
      say(result.text, !result.ok);
    });
  }

  // One confirmation dialog for rollback and terminate.
  const confirmDialog = $("#confirm-dialog");
  let confirmAction = null;
  function confirmThen(title, text, action) {
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    $("#confirm-error").hidden = true;
    confirmAction = action;
    confirmDialog.showModal();
  }
  $("#confirm-form")?.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (event.submitter && event.submitter.value === "cancel") {
      confirmDialog.close();
      return;
    }
    const result = await confirmAction();
    if (!result.ok) {
      const error = $("#confirm-error");
      error.textContent = result.text;
      error.hidden = false;
      return;
    }
    confirmDialog.close();
    say(result.text);
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-rollback]");
    if (!button) return;
    const id = Number(button.dataset.rollback);
    confirmThen(
      `Roll back ${appName} to history ${id}?`,
      `This syncs revision ${button.dataset.revision} again. Automated sync will be ` +
        "switched off for this application, so that it does not undo the rollback; " +
        "switch it back on in the app's sync policy when you are done.",
      () => call("/rollback", { id }),
    );
  });

  $("#terminate-button")?.addEventListener("click", () => {
    confirmThen(
      `Terminate the operation on ${appName}?`,
      "The running sync stops after its current step; what it applied stays applied.",
      () => call("/terminate"),
    );
  });
})();
