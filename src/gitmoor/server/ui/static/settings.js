// The settings pages' forms post JSON to the REST API (POST /api/v1/repositories,
// /clusters, /projects), the same routes the CLI and scripts use. The htmx
// extension "json-form" turns a form into the body those routes take:
// - a dotted name nests ("config.bearerToken" -> {"config": {"bearerToken": ...}});
// - a checkbox is true or false;
// - a textarea with data-lines is a list of its non-empty lines, and with
//   data-lines="destinations" each line "NAMESPACE [CLUSTER]" is a destination;
// - an empty field is left out, so the API's default applies (no empty password).
(() => {
  "use strict";

  function put(target, path, value) {
    let node = target;
    path.slice(0, -1).forEach((key) => { node = node[key] = node[key] || {}; });
    node[path[path.length - 1]] = value;
  }

  function formJSON(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.type === "submit" || el.type === "button") continue;
      let value;
      if (el.type === "checkbox") {
        value = el.checked;
      } else if (el.dataset.lines !== undefined) {
        value = el.value.split("\n").map((s) => s.trim()).filter(Boolean);
        if (el.dataset.lines === "destinations") {
          value = value.map((line) => {
            const [namespace, name] = line.split(/\s+/);
            return name ? { namespace, name } : { namespace };
          });
        }
        if (!value.length) continue;
      } else {
        // secrets are sent as typed; only plain text fields lose stray spaces
        value = el.type === "password" || el.tagName === "TEXTAREA" ? el.value : el.value.trim();
        if (!value) continue;
      }
      put(out, el.name.split("."), value);
    }
    return out;
  }

  htmx.defineExtension("json-form", {
    onEvent(name, event) {
      if (name === "htmx:configRequest") event.detail.headers["Content-Type"] = "application/json";
      return true;
    },
    encodeParameters(_xhr, _parameters, elt) {
      const form = elt.closest("form");
      return JSON.stringify(form ? formJSON(form) : {});
    },
  });
})();
