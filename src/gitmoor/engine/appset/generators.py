"""ApplicationSet generators: each turns its spec into a list of parameter sets.

The kinds and their parameters follow Argo CD's ApplicationSet controller
(``applicationset/generators``), so that templates written for it render the
same here. Two shapes of parameters, chosen by ``spec.goTemplate``:

- fasttemplate (default): flat string values; nested fields joined with dots
  (``cluster.address``), list items by index (``path[1]`` for path segments);
- goTemplate: nested values (``.path.segments``, ``.cluster.address``).

``list``
    ``elements`` (objects) or ``elementsYaml`` (a YAML list, typically templated
    by a matrix's first generator); each element is one parameter set. In
    fasttemplate mode nested fields are flattened with dots (Argo CD prints
    them with Go's ``%v``; flattening is what its other generators do).
``git`` with ``directories``
    ``repoURL``, ``revision`` (default HEAD), ``directories: [{path, exclude}]``.
    Every directory of the commit's tree is matched against the paths with Go's
    ``path.Match`` (``*`` stops at ``/``); one matching an ``exclude`` path is
    left out whatever the order (exclude wins); directories whose name starts
    with ``.`` are skipped with everything below them. Parameters: ``path``,
    ``path.basename``, ``path.basenameNormalized``, ``path[n]``; goTemplate:
    ``.path.path``, ``.path.basename``, ``.path.basenameNormalized``,
    ``.path.segments``.
``git`` with ``files``
    ``files: [{path}]``, globs where ``**`` spans directories (Argo CD's
    new-style file globbing). Each matching file is read as YAML (JSON is
    YAML); an object is one parameter set, a list one per item. Its fields, and
    ``path`` (the file's directory), ``path.basename``, ``path.filename``,
    ``path.basenameNormalized``, ``path.filenameNormalized``, ``path[n]``
    (goTemplate: ``.path.*`` and ``.path.segments``).
``clusters``
    The registered clusters (``gitmoor cluster add``) whose Secret labels match
    ``selector`` (``matchLabels``, ``matchExpressions`` with In, NotIn, Exists,
    DoesNotExist), plus the home cluster as ``in-cluster`` /
    ``https://kubernetes.default.svc`` when the selector is empty (it has no
    Secret, so no labels: Argo CD includes it only then). Parameters: ``name``,
    ``nameNormalized``, ``server``, ``project``, ``metadata.labels.<k>``,
    ``metadata.annotations.<k>``.
``matrix``
    Exactly two child generators; every parameter set of the first combined with
    every one of the second. The second's spec is first rendered with each
    parameter set of the first, so it may use them (a git ``path`` naming
    ``{{path.basename}}``). A key both give with different values is an error in
    fasttemplate mode; in goTemplate mode the second's value wins (Argo CD).
``merge``
    ``mergeKeys`` and two or more child generators: each parameter set of the
    first (the base) is overridden by the sets of later generators with the
    same merge-key values (later generators win); sets that match no base set
    are dropped, and a generator whose sets are not unique by the merge keys is
    an error (Argo CD: "the parameters from a generator were not unique").

``git`` and ``clusters`` also take ``values``: a map whose strings are rendered
with each parameter set and given as ``values.<k>`` (goTemplate: ``.values.k``).
Any generator may carry ``selector``, Argo CD's post selector: a label selector
over the generated parameters.

Errors are :class:`GeneratorError` naming the generator (``generators[1]
(matrix).generators[0] (git)``), the element when there is one, and the
field; nothing is returned half-done.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import posixpath
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmoor.engine.appset._gotemplate import go_str, normalize
from gitmoor.engine.appset.template import GeneratedParams, TemplateError, render_value
from gitmoor.model.appset import ApplicationSet, generator_kind
from gitmoor.model.errors import UserInputError
from gitmoor.model.project import path_match
from gitmoor.render.yamlload import load_documents
from gitmoor.settings.clusters import (
    CLUSTER_SECRET_TYPE,
    IN_CLUSTER,
    SECRET_TYPE_LABEL,
    secret_fields,
)
from gitmoor.settings.repos import credentials_for, load_credentials
from gitmoor.source import RepoCredentials, checkout_async, redact_url, resolve_async

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gitmoor.kube import KubeClient

Params = dict[str, Any]

#: Argo CD's server URL for the cluster it runs in
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"
#: a config file larger than this is refused rather than parsed
MAX_FILE_BYTES = 1 << 20
#: parameter sets one generator may produce (a matrix of two large ones included)
MAX_PARAM_SETS = 10_000


@dataclass
class GeneratorContext:
    """What generators need from the world."""

    #: the home cluster (cluster Secrets live in ``namespace``)
    kube: KubeClient
    #: the apps namespace (where cluster and repository Secrets live)
    namespace: str
    git_cache_dir: Path | None
    #: repository credentials; default: settings.repos.load_credentials
    credentials: Callable[[], Awaitable[list[RepoCredentials]]] | None = None


class GeneratorError(UserInputError):
    """A generator's spec, or what it read, is wrong; the message names the
    generator, the element and the field."""


@dataclass
class _Run:
    appset: ApplicationSet
    ctx: GeneratorContext
    creds: list[RepoCredentials] | None = None
    #: (repoURL, revision) -> tree: one pass reads one commit of each, however
    #: many matrix elements ask (and asks the server once)
    trees: dict[tuple[str, str], Path] = field(default_factory=dict)

    @property
    def go(self) -> bool:
        return self.appset.go_template

    async def credentials(self) -> list[RepoCredentials]:
        if self.creds is None:
            if self.ctx.credentials is not None:
                self.creds = await self.ctx.credentials()
            else:
                self.creds = await load_credentials(self.ctx.kube, self.ctx.namespace)
        return self.creds


async def generate(appset: ApplicationSet, ctx: GeneratorContext) -> list[Params]:
    """Every parameter set of every generator, in order. Each is a
    :class:`~gitmoor.engine.appset.template.GeneratedParams` that knows its
    generator and element, which ``render_application`` uses for the generator's
    template override and in its messages."""
    run = _Run(appset, ctx)
    out: list[Params] = []
    for i, gen in enumerate(appset.generators):
        where = f"generators[{i}]"
        kind = _kind(gen, where)
        sets = await _generate(run, gen, f"{where} ({kind})")
        out.extend(GeneratedParams(p, index=i, kind=kind, element=j) for j, p in enumerate(sets))
    return out


def _kind(gen: Any, where: str) -> str:
    try:
        return generator_kind(gen, where)
    except GeneratorError:
        raise
    except UserInputError as e:
        raise GeneratorError(e.message, concerns=where) from e


async def _generate(run: _Run, gen: dict[str, Any], where: str) -> list[Params]:
    kind = _kind(gen, where.split(" (")[0])
    body = gen[kind]
    if kind == "list":
        sets = _list(run, body, where)
    elif kind == "git":
        sets = await _git(run, body, where)
    elif kind == "clusters":
        sets = await _clusters(run, body, where)
    elif kind == "matrix":
        sets = await _matrix(run, body, where)
    else:
        sets = await _merge(run, body, where)
    if "selector" in gen:
        sets = [p for p in sets if _selects(gen["selector"], _label_view(p), f"{where}.selector")]
    if len(sets) > MAX_PARAM_SETS:
        raise GeneratorError(
            f"{where} produces {len(sets)} parameter sets, more than {MAX_PARAM_SETS}",
            concerns=where,
        )
    return sets


# ---------------------------------------------------------------- helpers


def _flatten(value: Any, prefix: str, out: Params) -> Params:
    """Argo CD's flattening of a config file for fasttemplate (``a.b``, ``a.0``),
    values printed as Go's ``%v`` prints them."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}.{i}" if prefix else str(i), out)
    else:
        out[prefix] = "" if value is None else go_str(value)
    return out


def _lookup(params: Params, key: str) -> tuple[bool, Any]:
    """A parameter by its flat name, or by the dotted path through nested
    (goTemplate) parameters."""
    if key in params:
        return True, params[key]
    cur: Any = params
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _label_view(params: Params) -> dict[str, str]:
    flat: dict[str, str] = {}
    for k, v in params.items():
        if isinstance(v, (dict, list)):
            _flatten(v, k, flat)
        else:
            flat[k] = "" if v is None else go_str(v)
    return flat


def _selects(selector: Any, labels: dict[str, str], where: str) -> bool:
    """Kubernetes label-selector semantics (matchLabels AND matchExpressions)."""
    if not isinstance(selector, dict):
        raise GeneratorError(f"{where} must be an object", concerns=where)
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        raise GeneratorError(f"{where}.matchLabels must be a map", concerns=where)
    for k, v in match_labels.items():
        if labels.get(str(k)) != go_str(v):
            return False
    exprs = selector.get("matchExpressions") or []
    if not isinstance(exprs, list):
        raise GeneratorError(f"{where}.matchExpressions must be a list", concerns=where)
    for i, e in enumerate(exprs):
        ewhere = f"{where}.matchExpressions[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("key"), str):
            raise GeneratorError(f"{ewhere} needs a key", concerns=ewhere)
        op, key = e.get("operator"), e["key"]
        values = [go_str(v) for v in e.get("values") or []]
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            raise GeneratorError(
                f"{ewhere}.operator must be In, NotIn, Exists or DoesNotExist, not {op!r}",
                concerns=ewhere,
            )
        if op in ("In", "NotIn") and not values:
            raise GeneratorError(f"{ewhere}.values must not be empty for {op}", concerns=ewhere)
        if not ok:
            return False
    return True


def _values(run: _Run, body: dict[str, Any], params: Params, where: str) -> Params:
    """``params`` plus the generator's ``values``, rendered with ``params``."""
    values = body.get("values")
    if values is None:
        return params
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise GeneratorError(f"{where}.values must be a map of strings", concerns=where)
    rendered = render_value(
        values,
        params,
        go_template=run.go,
        options=run.appset.go_template_options,
        where=where,
        path="values",
    )
    if run.go:
        return {**params, "values": rendered}
    return {**params, **{f"values.{k}": v for k, v in rendered.items()}}


def _str_field(body: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or not value:
        raise GeneratorError(f"{where}.{key} is required (a string)", concerns=where)
    return value


def _combine(run: _Run, a: Params, b: Params, where: str) -> Params:
    if run.go:
        return _deep_merge(a, b)
    out = dict(a)
    for k, v in b.items():
        if k in out and out[k] != v:
            # Argo CD's CombineStringMaps
            raise GeneratorError(
                f"{where}: found duplicate key {k} with different value, a: {out[k]} ,b: {v}",
                concerns=where,
            )
        out[k] = v
    return out


def _deep_merge(a: Params, b: Params) -> Params:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------- list


def _list(run: _Run, body: dict[str, Any], where: str) -> list[Params]:
    elements = body.get("elements")
    text = body.get("elementsYaml")
    if elements is None and text is None:
        raise GeneratorError(f"{where}: list needs elements or elementsYaml", concerns=where)
    items: list[Any] = []
    if elements is not None:
        if not isinstance(elements, list):
            raise GeneratorError(f"{where}.elements must be a list", concerns=where)
        items += elements
    if text is not None:
        if not isinstance(text, str):
            raise GeneratorError(f"{where}.elementsYaml must be a string", concerns=where)
        try:
            parsed = _load_yaml(text, f"{where}.elementsYaml")
        except UserInputError as e:
            raise GeneratorError(f"{where}.elementsYaml is not YAML: {e}", concerns=where) from e
        if parsed is not None and not isinstance(parsed, list):
            raise GeneratorError(f"{where}.elementsYaml must be a YAML list", concerns=where)
        items += parsed or []
    out: list[Params] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise GeneratorError(
                f"{where} element {i}: must be an object, not {go_str(item)!r}", concerns=where
            )
        if run.go:
            out.append(dict(item))
            continue
        flat: Params = {}
        for k, v in item.items():
            if k == "values" and isinstance(v, dict):
                _flatten(v, "values", flat)
            elif isinstance(v, (dict, list)):
                _flatten(v, str(k), flat)
            else:
                flat[str(k)] = v if isinstance(v, str) else ("" if v is None else go_str(v))
        out.append(flat)
    return out


# ---------------------------------------------------------------- git


def _clean_pattern(pattern: Any, where: str) -> str:
    """A repository-relative glob; one that leaves the repository is refused."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise GeneratorError(f"{where}.path is required (a glob)", concerns=where)
    clean = pattern.strip().lstrip("/")
    parts = clean.split("/")
    if ".." in parts or "\x00" in clean:
        raise GeneratorError(
            f"{where}.path {pattern!r} leaves the repository ('..' is not allowed)",
            concerns=where,
        )
    return "/".join(p for p in parts if p not in ("", ".")) or "."


def _walk(root: Path) -> tuple[list[str], list[str]]:
    """(directories, files) of the tree, repository-relative, sorted; hidden
    directories (``.git``, ``.github``) skipped with what is under them for
    directories (Argo CD's directory generator); files are every regular file."""
    dirs: list[str] = []
    files: list[str] = []
    for top, subdirs, names in os.walk(root, followlinks=False):
        rel = Path(top).relative_to(root).as_posix()
        subdirs.sort()
        for d in subdirs:
            path = d if rel == "." else f"{rel}/{d}"
            full = Path(top) / d
            if full.is_symlink():
                continue
            if not any(p.startswith(".") for p in path.split("/")):
                dirs.append(path)
        for n in names:
            files.append(n if rel == "." else f"{rel}/{n}")
    return sorted(dirs), sorted(files)


def _glob_match(pattern: str, path: str) -> bool:
    """``**`` matches any number of path segments, other segments as Go's
    ``path.Match`` (doublestar, which Argo CD's file globbing uses)."""
    pats, parts = pattern.split("/"), path.split("/")

    # Memoised: without it ``**/**/**/...`` tries every split of the path, which
    # is exponential in the number of ``**``.
    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(pats):
            return j == len(parts)
        if pats[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and path_match(pats[i], parts[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _path_params(run: _Run, directory: str, filename: str | None, prefix: str) -> Params:
    segments = directory.split("/")
    base = posixpath.basename(directory) or directory
    nested: Params = {
        "path": directory,
        "basename": base,
        "basenameNormalized": normalize(base),
    }
    if filename is not None:
        nested["filename"] = filename
        nested["filenameNormalized"] = normalize(filename)
    key = f"{prefix}.path" if prefix else "path"
    if run.go:
        nested["segments"] = segments
        if prefix:
            return {prefix: {"path": nested}}
        return {"path": nested}
    flat: Params = {key: directory}
    for k, v in nested.items():
        if k != "path":
            flat[f"{key}.{k}"] = v
    for i, s in enumerate(segments):
        flat[f"{key}[{i}]"] = s
    return flat


async def _checkout(run: _Run, body: dict[str, Any], where: str) -> Path:
    url = _str_field(body, "repoURL", where)
    revision = _str_field(body, "revision", where, "HEAD")
    project = (run.appset.template.get("spec") or {}).get("project") or "default"
    # A templated project is not known until rendering: then only the
    # credentials every project may use apply (never a project's own).
    if not isinstance(project, str) or "{{" in project:
        project = ""
    known = run.trees.get((url, revision))
    if known is not None:
        return known
    creds = credentials_for(url, await run.credentials(), project)
    try:
        commit = await resolve_async(url, revision, creds, cache_dir=run.ctx.git_cache_dir)
        tree = await checkout_async(url, commit, creds, cache_dir=run.ctx.git_cache_dir)
    except UserInputError as e:
        raise GeneratorError(f"{where}: {redact_url(url)}: {e}", concerns=where) from e
    run.trees[(url, revision)] = tree
    return tree


async def _git(run: _Run, body: dict[str, Any], where: str) -> list[Params]:
    has_dirs, has_files = "directories" in body, "files" in body
    if has_dirs == has_files:
        raise GeneratorError(
            f"{where}: git needs exactly one of directories and files", concerns=where
        )
    prefix = body.get("pathParamPrefix") or ""
    if not isinstance(prefix, str):
        raise GeneratorError(f"{where}.pathParamPrefix must be a string", concerns=where)
    listed = "directories" if has_dirs else "files"
    entries = body[listed]
    if not isinstance(entries, list) or not entries:
        raise GeneratorError(f"{where}.{listed} must be a non-empty list", concerns=where)
    patterns: list[tuple[str, bool]] = []
    for i, e in enumerate(entries):
        ewhere = f"{where}.{listed}[{i}]"
        if not isinstance(e, dict):
            raise GeneratorError(f"{ewhere} must be an object with a path", concerns=ewhere)
        exclude = e.get("exclude", False)
        if not isinstance(exclude, bool):
            raise GeneratorError(f"{ewhere}.exclude must be true or false", concerns=ewhere)
        patterns.append((_clean_pattern(e.get("path"), ewhere), exclude))
    root = await _checkout(run, body, where)
    dirs, files = await _in_thread(_walk, root)
    out: list[Params] = []
    if has_dirs:
        includes = [p for p, ex in patterns if not ex]
        excludes = [p for p, ex in patterns if ex]
        for d in dirs:
            if any(path_match(p, d) for p in includes) and not any(
                path_match(p, d) for p in excludes
            ):
                params = _path_params(run, d, None, prefix)
                out.append(_values(run, body, params, f"{where} element {len(out)}"))
        return out
    if any(ex for _, ex in patterns):
        raise GeneratorError(f"{where}.files: exclude is for directories only", concerns=where)
    matched = sorted({f for f in files for p, _ in patterns if _glob_match(p, f)})
    for f in matched:
        for item in _read_config(root, f, where):
            directory = posixpath.dirname(f) or "."
            path = _path_params(run, directory, posixpath.basename(f), prefix)
            params = {**item, **path} if run.go else {**_flatten(item, "", {}), **path}
            out.append(_values(run, body, params, f"{where} element {len(out)}"))
    return out


async def _in_thread(fn: Callable[[Path], Any], root: Path) -> Any:
    return await asyncio.to_thread(fn, root)


def _load_yaml(text: str, where: str) -> Any:
    """The first document of ``text`` (what Argo CD's ``yaml.Unmarshal`` reads), or
    None. Through gitmoor's strict loader, whose node budget refuses an alias
    "billion laughs" (a 400-byte file that PyYAML loads as shared references,
    and that flattening or ``toJson`` then expands 10^8 times on the event loop);
    go-yaml refuses the same as "excessive aliasing"."""
    docs = load_documents(text, where=where)
    return docs[0].data if docs else None


def _read_config(root: Path, rel: str, where: str) -> list[dict[str, Any]]:
    """The parameter objects of one config file: an object, or a list of them."""
    path = root / rel
    fwhere = f"{where} file {rel}"
    try:
        real = path.resolve(strict=True)
        if not real.is_relative_to(root.resolve()):
            raise GeneratorError(f"{fwhere}: a symlink out of the repository", concerns=fwhere)
        st = real.stat()
        if not stat.S_ISREG(st.st_mode):
            raise GeneratorError(f"{fwhere}: not a regular file", concerns=fwhere)
        if st.st_size > MAX_FILE_BYTES:
            raise GeneratorError(
                f"{fwhere}: {st.st_size} bytes, more than {MAX_FILE_BYTES}", concerns=fwhere
            )
        text = real.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise GeneratorError(f"{fwhere}: cannot be read: {e}", concerns=fwhere) from e
    try:
        data = json.loads(text) if rel.endswith(".json") else _load_yaml(text, rel)
    except (json.JSONDecodeError, UserInputError) as e:
        raise GeneratorError(f"{fwhere}: not JSON or YAML: {e}", concerns=fwhere) from e
    if data is None:
        return [{}]
    items = data if isinstance(data, list) else [data]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            at = f" item {i}" if isinstance(data, list) else ""
            raise GeneratorError(
                f"{fwhere}{at}: must be an object (or a list of objects), not {type(item).__name__}",
                concerns=fwhere,
            )
    return items


# ---------------------------------------------------------------- clusters


async def _clusters(run: _Run, body: dict[str, Any], where: str) -> list[Params]:
    selector = body.get("selector") or {}
    if not isinstance(selector, dict):
        raise GeneratorError(f"{where}.selector must be an object", concerns=where)
    ar = await run.ctx.kube.resource("", "v1", "Secret")
    listed = await run.ctx.kube.list(
        ar, run.ctx.namespace, label_selector=f"{SECRET_TYPE_LABEL}={CLUSTER_SECRET_TYPE}"
    )
    clusters: list[tuple[str, str, str, dict[str, str], dict[str, str]]] = []
    for secret in listed.items:
        meta = secret.get("metadata") or {}
        try:
            fields = secret_fields(secret)
        except UserInputError:
            continue  # a broken Secret is the cluster list's problem, not a target
        name = fields.get("name", "")
        if not name:
            continue
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        annotations = {
            str(k): str(v)
            for k, v in (meta.get("annotations") or {}).items()
            # kubectl's copy of the whole object would put the Secret in a parameter
            if k != "kubectl.kubernetes.io/last-applied-configuration"
        }
        if _selects(selector, labels, f"{where}.selector"):
            clusters.append(
                (name, fields.get("server", ""), fields.get("project", ""), labels, annotations)
            )
    clusters.sort(key=lambda c: c[0])
    unselective = not selector.get("matchLabels") and not selector.get("matchExpressions")
    if unselective and not any(c[1] == IN_CLUSTER_SERVER for c in clusters):
        clusters.insert(0, (IN_CLUSTER, IN_CLUSTER_SERVER, "", {}, {}))
    out: list[Params] = []
    for name, server, project, labels, annotations in clusters:
        if run.go:
            params: Params = {
                "name": name,
                "nameNormalized": normalize(name),
                "server": server,
                "project": project,
                "metadata": {"labels": labels, "annotations": annotations},
            }
        else:
            params = {
                "name": name,
                "nameNormalized": normalize(name),
                "server": server,
                "project": project,
            }
            params.update({f"metadata.labels.{k}": v for k, v in labels.items()})
            params.update({f"metadata.annotations.{k}": v for k, v in annotations.items()})
        out.append(_values(run, body, params, f"{where} element {len(out)}"))
    return out


# ---------------------------------------------------------------- matrix, merge


def _children(body: dict[str, Any], where: str, kind: str) -> list[dict[str, Any]]:
    children = body.get("generators")
    if not isinstance(children, list):
        raise GeneratorError(f"{where}.generators must be a list", concerns=where)
    if kind == "matrix" and len(children) != 2:
        raise GeneratorError(
            f"{where} must have exactly two child generators, found {len(children)}",
            concerns=where,
        )
    if kind == "merge" and len(children) < 2:
        raise GeneratorError(
            f"{where} needs two or more child generators, found {len(children)}", concerns=where
        )
    return children


def _child_where(where: str, i: int, child: Any) -> str:
    kind = _kind(child, f"{where}.generators[{i}]")
    return f"{where}.generators[{i}] ({kind})"


async def _matrix(run: _Run, body: dict[str, Any], where: str) -> list[Params]:
    first, second = _children(body, where, "matrix")
    w1, w2 = _child_where(where, 0, first), _child_where(where, 1, second)
    out: list[Params] = []
    for i, p1 in enumerate(await _generate(run, first, w1)):
        try:
            child = render_value(
                second,
                p1,
                go_template=run.go,
                options=run.appset.go_template_options,
                where=f"{w2} with element {i} of {w1}",
            )
        except TemplateError as e:
            raise GeneratorError(e.message, concerns=w2) from e
        for p2 in await _generate(run, child, w2):
            out.append(_combine(run, p1, p2, f"{where} element {len(out)}"))
            if len(out) > MAX_PARAM_SETS:
                raise GeneratorError(
                    f"{where} produces more than {MAX_PARAM_SETS} parameter sets", concerns=where
                )
    return out


def _merge_key(params: Params, keys: list[str]) -> str:
    return json.dumps([_lookup(params, k)[1] for k in keys], sort_keys=True, default=str)


async def _merge(run: _Run, body: dict[str, Any], where: str) -> list[Params]:
    children = _children(body, where, "merge")
    keys = body.get("mergeKeys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        raise GeneratorError(
            f"{where}.mergeKeys must be a non-empty list of parameter names", concerns=where
        )
    results: list[list[Params]] = []
    for i, child in enumerate(children):
        cw = _child_where(where, i, child)
        sets = await _generate(run, child, cw)
        seen: set[str] = set()
        for p in sets:
            k = _merge_key(p, keys)
            if k in seen:
                raise GeneratorError(
                    f"{cw}: the parameters from a generator were not unique by the given "
                    f"mergeKeys ({', '.join(keys)}: {k}), Merge requires all param sets to be unique",
                    concerns=cw,
                )
            seen.add(k)
        results.append(sets)
    base, overrides = results[0], results[1:]
    by_key = [{_merge_key(p, keys): p for p in sets} for sets in overrides]
    out: list[Params] = []
    for p in base:
        k = _merge_key(p, keys)
        merged = dict(p)
        for table in by_key:
            if k in table:
                merged = _deep_merge(merged, table[k]) if run.go else {**merged, **table[k]}
        out.append(merged)
    return out
