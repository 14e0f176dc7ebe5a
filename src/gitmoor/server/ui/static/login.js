// The login form: POST /api/v1/session with the form's fields (the route sets the
// session cookie), then go back to the page that sent us here (data-next, which
// the server checked is a path on this server).
(() => {
  "use strict";
  const form = document.getElementById("login-form");
  if (!form) return;
  const error = document.getElementById("login-error");
  const button = form.querySelector("button[type=submit]");

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
    form.querySelector("#password").select();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        window.location.assign(form.dataset.next || "/applications");
        return;
      }
      let detail = "";
      try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
      if (response.status === 401) {
        fail("Invalid username or password.");
      } else if (response.status === 429) {
        const wait = response.headers.get("Retry-After");
        fail(`Too many failed logins. Try again in ${wait || "a few"} seconds.`);
      } else {
        fail(typeof detail === "string" && detail ? detail : `Login failed (HTTP ${response.status}).`);
      }
    } catch (_) {
      fail("The server could not be reached.");
    } finally {
      button.disabled = false;
    }
  });
})();
