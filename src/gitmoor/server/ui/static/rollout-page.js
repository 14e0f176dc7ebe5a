// The Rollout page's buttons: promote, promote full, abort, retry. Each calls
// POST /api/v1/applications/{app}/rollout (JSON, with the session's CSRF token),
// says the answer, and reloads the view part (htmx, "rollout-changed").
(() => {
  "use strict";

  const page = document.querySelector("[data-rollout-page]");
  if (!page) return;
  const { app, namespace, name } = page.dataset;
  const url =
    `/api/v1/applications/${encodeURIComponent(app)}/rollout` +
    `?namespace=${encodeURIComponent(namespace)}&name=${encodeURIComponent(name)}`;
  const notice = document.getElementById("rollout-notice");

  function say(text, isError) {
    notice.textContent = text;
    notice.dataset.kind = isError ? "error" : "ok";
    notice.setAttribute("role", isError ? "alert" : "status");
    notice.hidden = !text;
  }

  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  async function act(button) {
    const body = { action: button.dataset.rolloutAction, full: button.dataset.full === "true" };
    button.disabled = true;
    try {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify(body),
      });
      if (response.status === 401) {
        location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
        return;
      }
      let text = `${response.status} ${response.statusText}`;
      try {
        const data = await response.json();
        if (typeof data.message === "string") text = data.message;
        else if (typeof data.detail === "string") text = data.detail;
      } catch (_) { /* not JSON */ }
      say(text, !response.ok);
      if (response.ok && window.htmx) window.htmx.trigger(document.body, "rollout-changed");
    } catch (e) {
      say(`the server did not answer (${e})`, true);
    } finally {
      button.disabled = false;
    }
  }

  for (const button of document.querySelectorAll("[data-rollout-action]")) {
    button.addEventListener("click", () => act(button));
  }
})();
