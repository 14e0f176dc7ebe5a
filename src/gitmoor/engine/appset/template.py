"""ApplicationSet templating: one parameter set + the template = one Application.

Two syntaxes, as in Argo CD:

- **fasttemplate** (the default): ``{{param}}`` (spaces inside the braces allowed)
  is replaced by the string value of ``param``; a ``{{name}}`` that is not a
  parameter stays as written (Argo CD's ``fasttemplate`` tag function writes an
  unknown tag back unchanged). Parameters are flat: ``path.basename``,
  ``path[1]``, ``metadata.labels.env``.
- **goTemplate** (``spec.goTemplate: true``): each string is a Go template over
  nested parameters (``{{.path.basename}}``, ``{{index .path.segments 1}}``),
  with ``goTemplateOptions`` (``missingkey=error``); see
  :mod:`gitmoor.engine.appset._gotemplate` for the functions supported.

Every string of the template is rendered, map keys included (Argo CD renders
the template's fields one by one, keys of maps such as labels too). A
top-level generator's own template (``list: {elements: [...], template:
{...}}``) is merged over ``spec.template`` first (Argo CD: non-empty fields of
the generator's template win, objects merge, lists are replaced).

Errors name where: ``generators[0] (git) element 2 field spec.source.path: map
has no entry for key "foo"``.
"""

from __future__ import annotations

import re
from typing import Any

from gitmoor.engine.appset._gotemplate import GoTemplateError
from gitmoor.engine.appset._gotemplate import render as go_render
from gitmoor.model.application import API_VERSION, KIND, parse_application
from gitmoor.model.appset import APPSET_LABEL, GENERATOR_KINDS, ApplicationSet, JSONDict
from gitmoor.model.errors import UserInputError
from gitmoor.model.jsondata import copy_json

Params = dict[str, Any]

#: Argo CD's name for the cluster it runs in, as a destination ``server``
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"

#: a Kubernetes object name (DNS-1123 subdomain) of at most 63 characters: the
#: app's name also becomes the ``app.kubernetes.io/instance`` label value of
#: every object it applies, and a label value stops at 63
_APP_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?")
_FAST_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_GENERATOR_REF = re.compile(r"generators\[(\d+)\]")


class TemplateError(UserInputError):
    """A template could not be rendered into a valid Application; the message
    names the generator, the element and the field."""


class GeneratedParams(dict[str, Any]):
    """A parameter set that remembers where it came from: which top-level
    generator (``index``, whose ``template`` override then applies) and which
    of its elements. :func:`gitmoor.engine.appset.generate` returns these, so
    ``render_application(appset, params)`` needs no more to say."""

    __slots__ = ("element", "index", "kind")

    def __init__(self, data: Params, *, index: int, kind: str, element: int) -> None:
        super().__init__(data)
        self.index = index
        self.kind = kind
        self.element = element

    @property
    def label(self) -> str:
        return f"generators[{self.index}] ({self.kind})"


# ---------------------------------------------------------------- strings


def _fast_value(value: Any) -> str:
    # Generators already give strings in fasttemplate mode; a list element the
    # user wrote as a number or boolean prints the way Go's %v prints it.
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def render_fast(text: str, params: Params) -> str:
    """Argo CD's fasttemplate replacement: known ``{{ key }}`` replaced, the rest kept."""
    if "{{" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        key = m.group(1).strip()
        return _fast_value(params[key]) if key in params else m.group(0)

    return _FAST_TAG.sub(sub, text)


def render_string(
    text: str, params: Params, *, go_template: bool, options: tuple[str, ...] = ()
) -> str:
    """One string rendered; GoTemplateError (go mode) on failure."""
    if not go_template:
        return render_fast(text, params)
    if "{{" not in text:
        return text
    missingkey = "default"
    for o in options:
        if o.startswith("missingkey="):
            missingkey = o.split("=", 1)[1]
    return go_render(text, params, missingkey=missingkey)


def render_value(
    value: Any,
    params: Params,
    *,
    go_template: bool,
    options: tuple[str, ...] = (),
    where: str = "",
    path: str = "",
) -> Any:
    """A JSON value with every string (and map key) rendered. TemplateError
    names ``where`` and the field path."""
    if isinstance(value, str):
        try:
            return render_string(value, params, go_template=go_template, options=options)
        except GoTemplateError as e:
            raise TemplateError(f"{where} field {path or '(root)'}: {e}", concerns=where) from e
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            key = render_value(
                str(k), params, go_template=go_template, options=options, where=where, path=sub
            )
            if key in out:
                raise TemplateError(
                    f"{where} field {sub}: renders to key {key!r}, which the object already has",
                    concerns=where,
                )
            out[key] = render_value(
                v, params, go_template=go_template, options=options, where=where, path=sub
            )
        return out
    if isinstance(value, list):
        return [
            render_value(
                v,
                params,
                go_template=go_template,
                options=options,
                where=where,
                path=f"{path}[{i}]",
            )
            for i, v in enumerate(value)
        ]
    return value


# ---------------------------------------------------------------- merge


def merge_template(base: JSONDict, override: JSONDict) -> JSONDict:
    """``override`` over ``base`` (Argo CD merges a generator's template with
    mergo ``WithOverride``): objects merge key by key, any other non-empty value
    of the override replaces the base's, an empty one ("" , [], {}, null, false)
    leaves the base's."""
    out = copy_json(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_template(out[k], v)
        elif v not in (None, "", [], {}, False):
            out[k] = copy_json(v)
    return out


# ---------------------------------------------------------------- Application


def _origin(
    appset: ApplicationSet, params: Params, generator: str, element: int
) -> tuple[int | None, str, int]:
    """(top-level generator index, its label, element index) for messages and the
    template override."""
    if isinstance(params, GeneratedParams):
        return params.index, params.label, params.element
    m = _GENERATOR_REF.search(generator)
    if m and int(m.group(1)) < len(appset.generators):
        return int(m.group(1)), generator, element
    if len(appset.generators) == 1:
        kind = next((k for k in GENERATOR_KINDS if k in appset.generators[0]), "")
        return 0, generator or f"generators[0] ({kind})", element
    return None, generator or "generators", element


def _strmap(value: Any, field: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(v, (str, int, float, bool)) for v in value.values()
    ):
        raise TemplateError(f"{where} field {field}: must be a map of strings", concerns=where)
    return {str(k): _fast_value(v) for k, v in value.items()}


def _destination(spec: JSONDict, where: str) -> None:
    """gitmoor's Application names its cluster (``destination.name``); Argo CD's
    ``destination.server`` is read for the home cluster only, anything else is
    refused rather than dropped (the CRD would prune it, and the app would
    deploy to the home cluster)."""
    dest = spec.get("destination")
    if not isinstance(dest, dict) or "server" not in dest:
        return
    server = dest.pop("server")
    if dest.get("name"):
        if server:
            # Argo CD: "application destination can't have both name and server defined"
            raise TemplateError(
                f"{where} field spec.destination: both name and server are set; keep name",
                concerns=where,
            )
        return
    if server in ("", IN_CLUSTER_SERVER):
        dest["name"] = "in-cluster"
        return
    raise TemplateError(
        f"{where} field spec.destination.server: {server!r}: gitmoor's Application names its "
        "cluster with spec.destination.name (with the clusters generator, "
        "name: '{{name}}', or '{{.name}}' with goTemplate)",
        concerns=where,
    )


def render_application(
    appset: ApplicationSet, params: Params, *, generator: str = "", element: int = 0
) -> JSONDict:
    """The Application that ``params`` makes of the template: apiVersion, kind,
    metadata (name, the set's namespace, labels with :data:`APPSET_LABEL`,
    annotations, finalizers) and spec. TemplateError naming the generator, the
    element and the field when a string does not render, the name is not a valid
    object name, or the spec is not an Application's. (Owner references are the
    reconciler's: it knows the live set.)"""
    index, label, elem = _origin(appset, params, generator, element)
    where = f"{label} element {elem}"
    template = appset.template
    if index is not None:
        gen = appset.generators[index]
        kind = next((k for k in GENERATOR_KINDS if k in gen), "")
        override = gen[kind].get("template") if kind else None
        if isinstance(override, dict) and override:
            template = merge_template(template, override)
    rendered = render_value(
        template,
        params,
        go_template=appset.go_template,
        options=appset.go_template_options,
        where=where,
    )
    meta = rendered.get("metadata") or {}
    if not isinstance(meta, dict):
        raise TemplateError(f"{where} field metadata: must be an object", concerns=where)
    name = meta.get("name")
    if not isinstance(name, str) or _APP_NAME.fullmatch(name) is None:
        raise TemplateError(
            f"{where} field metadata.name: {name!r} is not a valid Application name "
            "(lower-case letters, digits, '-' and '.', starting and ending with a letter "
            "or digit, at most 63 characters; normalize helps)",
            concerns=where,
        )
    ns = meta.get("namespace")
    if ns not in (None, "", appset.namespace):
        raise TemplateError(
            f"{where} field metadata.namespace: {ns!r}: an ApplicationSet creates its "
            f"Applications in its own namespace ({appset.namespace})",
            concerns=where,
        )
    labels = _strmap(meta.get("labels"), "metadata.labels", where)
    labels[APPSET_LABEL] = appset.name
    out_meta: JSONDict = {"name": name, "namespace": appset.namespace, "labels": labels}
    annotations = _strmap(meta.get("annotations"), "metadata.annotations", where)
    if annotations:
        out_meta["annotations"] = annotations
    finalizers = meta.get("finalizers")
    if finalizers:
        if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
            raise TemplateError(
                f"{where} field metadata.finalizers: must be a list of strings", concerns=where
            )
        out_meta["finalizers"] = list(finalizers)
    spec = rendered.get("spec")
    if not isinstance(spec, dict):
        raise TemplateError(f"{where} field spec: must be an object", concerns=where)
    _destination(spec, where)
    manifest: JSONDict = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": out_meta,
        "spec": spec,
    }
    # Checked here too so that the message names the element (the Application
    # parser knows only the app).
    try:
        parse_application(manifest)
    except UserInputError as e:
        raise TemplateError(
            f"{where}: Application {name} is not valid: {e.message}", concerns=where
        ) from e
    return manifest
