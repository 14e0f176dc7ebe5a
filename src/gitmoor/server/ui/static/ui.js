// gitmoor: behaviour every page shares (loaded by base.html after htmx).
// - A control with data-redirect goes there once its htmx request succeeded
//   (the logout button: DELETE /api/v1/session, then /login).
// - A control with data-refresh="#id" reloads that part of the page once its
//   request succeeded (a settings list after a create or delete), resets its form,
//   and says data-done in the #toast live region.
// - A failed htmx request says why in #toast instead of failing silently.
(() => {
  "use strict";

  function toast(message, tone = "bad") {
    const box = document.getElementById("toast");
    if (!box) return;
    box.dataset.tone = tone;
    box.textContent = message;
    clearTimeout(box._timer);
    box._timer = setTimeout(() => { box.textContent = ""; }, 8000);
  }
  window.gitmoorToast = toast;

  document.addEventListener("htmx:afterRequest", (event) => {
    const elt = event.detail.elt;
    if (!elt || !elt.dataset || !event.detail.successful) return;
    if (elt.dataset.redirect) {
      window.location.assign(elt.dataset.redirect);
      return;
    }
    if (elt.dataset.refresh) {
      const selector = elt.dataset.refresh;
      if (elt.tagName === "FORM") elt.reset();
      window.htmx.ajax("GET", window.location.pathname, { target: selector, select: selector, swap: "outerHTML" });
    }
    if (elt.dataset.done) toast(elt.dataset.done, "ok");
  });

  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    let detail = "";
    try { detail = JSON.parse(xhr.responseText).detail; } catch (_) { /* not JSON */ }
    if (detail && typeof detail !== "string") detail = JSON.stringify(detail);
    toast(detail ? `${detail} (HTTP ${xhr.status})` : `The request failed (HTTP ${xhr.status}).`);
  });

  document.addEventListener("htmx:sendError", () => toast("The server could not be reached."));
})();
