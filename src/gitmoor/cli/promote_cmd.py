"""`gitmoor promote`: copy image tags or chosen Helm values from one environment's path to another's.

The repository layout this serves is one directory per environment
(``apps/guestbook/overlays/{dev,test,prod}``: the seed's "one template,
dev → test → prod"). Promotion is a Git commit, never a change made to the
cluster: the target environment's app then syncs it like any other commit,
and ``git revert`` undoes it. Argo CD has no such command (users script it or
run Argo CD Image Updater's git write-back, which writes a
``.argocd-source-<app>.yaml`` file beside the app); Kargo promotes the same way
by committing to the target path.

How the target file is edited: line by line. Only the lines that carry a
promoted value change (a value is replaced after its key, a comment after it
kept; a missing ``newTag``/``digest`` line is inserted beside the entry's other
fields; a missing image entry or ``images:`` block is appended), so the file's
comments, order and quoting stay as their authors wrote them. Each edit is
checked by parsing the result and comparing it with the intended data; when a
file's shape defeats the line editor (flow style, a value set under a key that
does not exist yet, anchors) the file is re-dumped from that data instead,
which keeps order but drops comments, and the command says so.

All git work goes through :mod:`gitmoor.source.push`: the branch is read with
the repository's stored credentials (the ones the target app would use) and the
push is leased on the commit read, so a branch that moved in between is
refused ("the branch main moved since gitmoor read it ...; run again").
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gitmoor.cli._common import State, fail, out, run
from gitmoor.model import UserInputError

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from gitmoor.source import RepoCredentials
    from gitmoor.source.push import Author, WorkingCopy

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
IMAGE_FIELDS = ("newName", "newTag", "digest")


@dataclass
class Edit:
    """One file's promotion: its text before and after, and one line per change."""

    path: str
    before: str
    after: str
    changes: list[str] = field(default_factory=list)
    #: "lines" (line-level edit) or "re-dump" (comments not kept)
    method: str = "lines"

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"a/{self.path}",
                tofile=f"b/{self.path}",
            )
        )


# ------------------------------------------------------------------ YAML text helpers


def _load(text: str, where: str) -> Any:
    """One YAML document, read by the render's hardened loader: the source path's
    files are anyone's with push access, so an alias bomb, a file over the size
    limit or a nesting too deep is refused (naming the file and line) before the
    edit compares, prints or dumps it, and a duplicate key is refused as
    kustomize's own (Go) decoder refuses it, instead of PyYAML's silent last-wins."""
    from gitmoor.render.yamlload import load_documents

    docs = load_documents(text, where=where)
    if len(docs) > 1:
        raise UserInputError(
            f"{where} is not valid YAML: it holds {len(docs)} documents, not one",
            concerns=where,
        )
    return docs[0].data if docs else None


def _scalar(value: Any) -> str:
    """``value`` as a YAML flow scalar, quoted where YAML would read it as another type."""
    import yaml

    text: str = yaml.safe_dump(value, default_flow_style=True, width=1_000_000)
    text = text.strip()
    return text.removesuffix("...").strip()


def _redump(data: Any) -> str:
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1_000_000))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith("#")


_VALUE = re.compile(
    r"^(?P<head>\s*(?:-\s+)?(?P<key>[A-Za-z0-9_.\-/]+)\s*:)(?P<rest>.*?)(?P<nl>\r?\n?)$"
)


def _split_comment(rest: str) -> tuple[str, str]:
    """``rest`` (what follows ``key:``) as (value, trailing comment with its spaces)."""
    stripped = rest.lstrip()
    lead = rest[: len(rest) - len(stripped)]
    if stripped[:1] in ("'", '"'):
        quote = stripped[0]
        i = 1
        while i < len(stripped):
            if stripped[i] == quote:
                if quote == "'" and stripped[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                break
            if quote == '"' and stripped[i] == "\\":
                i += 1
            i += 1
        return lead + stripped[: i + 1], stripped[i + 1 :]
    m = re.search(r"\s+#", stripped)
    if m is None:
        return rest, ""
    return lead + stripped[: m.start()], stripped[m.start() :]


def _replace_value(line: str, value: Any) -> str:
    m = _VALUE.match(line)
    assert m is not None
    _, comment = _split_comment(m["rest"])
    return f"{m['head']} {_scalar(value)}{comment}{m['nl']}"


# ------------------------------------------------------------------ images


def images_of(data: Any, where: str) -> dict[str, dict[str, Any]]:
    """A kustomization's ``images:`` by name."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserInputError(f"{where} is not a kustomization (not a mapping)", concerns=where)
    images = data.get("images") or []
    if not isinstance(images, list):
        raise UserInputError(f"{where}: images is not a list", concerns=where)
    out: dict[str, dict[str, Any]] = {}
    for entry in images:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            out[entry["name"]] = entry
    return out


def promote_images(source_text: str, target_text: str, *, source: str, target: str) -> Edit:
    """The target kustomization with every image of the source's ``images:``
    given the source's ``newName``/``newTag``/``digest`` (a field the source
    does not set is removed, so the target then runs exactly the source's image)."""
    src = images_of(_load(source_text, source), source)
    data = _load(target_text, target)
    current = images_of(data, target)
    edit = Edit(target, target_text, target_text)
    wanted: dict[str, dict[str, Any]] = {}
    for name, entry in src.items():
        fields = {f: entry[f] for f in IMAGE_FIELDS if f in entry}
        have = {f: current.get(name, {})[f] for f in IMAGE_FIELDS if f in current.get(name, {})}
        if fields == have:
            continue
        wanted[name] = fields
        edit.changes.append(f"image {name}: {_show(have)} -> {_show(fields)}")
    if not wanted:
        return edit
    expected = _expected_images(data, wanted)
    text = _edit_images(target_text, wanted)
    if text is None or _load(text, target) != expected:
        text, edit.method = _redump(expected), "re-dump"
    edit.after = text
    return edit


def _show(fields: dict[str, Any]) -> str:
    if not fields:
        return "(unset)"
    return " ".join(f"{k}={v}" for k, v in fields.items())


def _expected_images(data: Any, wanted: dict[str, dict[str, Any]]) -> dict[str, Any]:
    import copy

    doc: dict[str, Any] = copy.deepcopy(data) if isinstance(data, dict) else {}
    images = doc.setdefault("images", [])
    if images is None:
        images = doc["images"] = []
    done = set()
    for entry in images:
        if isinstance(entry, dict) and entry.get("name") in wanted:
            name = entry["name"]
            for f in IMAGE_FIELDS:
                entry.pop(f, None)
            entry.update(wanted[name])
            done.add(name)
    for name, fields in wanted.items():
        if name not in done:
            images.append({"name": name, **fields})
    return doc


def _edit_images(text: str, wanted: dict[str, dict[str, Any]]) -> str | None:
    """Line-level edit of a block-style ``images:`` list; None when the shape is another."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next(
        (i for i, ln in enumerate(lines) if re.match(r"^images:\s*(#.*)?$", ln.rstrip("\r\n"))),
        None,
    )
    if start is None:
        if any(ln.startswith("images:") for ln in lines):
            return None  # `images: []` or flow style
        block = ["images:\n"] + [ln for n, f in wanted.items() for ln in _new_item(n, f, 0)]
        return "".join(lines) + "".join(block)
    # The block: lines after `images:` that are indented, or `- ` items at column 0.
    end = start + 1
    while end < len(lines):
        ln = lines[end]
        if _is_content(ln) and _indent(ln) == 0 and not ln.startswith("- ") and ln.strip() != "-":
            break
        end += 1
    while end > start + 1 and not _is_content(lines[end - 1]):
        end -= 1  # trailing blank lines and comments belong to what follows
    items: list[tuple[int, int]] = []
    for i in range(start + 1, end):
        if lines[i].lstrip(" ").startswith("- "):
            if items:
                items[-1] = (items[-1][0], i)
            items.append((i, end))
    if any(_is_content(ln) for ln in lines[start + 1 : items[0][0] if items else end]):
        return None
    dash = _indent(lines[items[0][0]]) if items else 0
    out = list(lines)
    done: set[str] = set()
    # Bottom-up, so that earlier line numbers stay valid.
    for first, last in reversed(items):
        block = out[first:last]
        keys = _item_keys(block)
        if keys is None:
            return None
        name = keys.get("name")
        if name is None:
            continue
        m = _VALUE.match(block[keys["name"]])
        assert m is not None  # _item_keys matched it
        name_value = _load(_split_comment(m["rest"])[0], "images")
        if not isinstance(name_value, str) or name_value not in wanted:
            continue
        done.add(name_value)
        fields = wanted[name_value]
        key_indent = _indent(block[0]) + 2
        new_block = list(block)
        for f in reversed(IMAGE_FIELDS):
            if f in keys and f not in fields:
                del new_block[keys[f]]
        for f in IMAGE_FIELDS:
            if f in fields:
                current = _item_keys(new_block)
                assert current is not None
                if f in current:
                    new_block[current[f]] = _replace_value(new_block[current[f]], fields[f])
                else:
                    at = max(current.values()) + 1
                    new_block.insert(at, " " * key_indent + f"{f}: {_scalar(fields[f])}\n")
        out[first:last] = new_block
    missing = [n for n in wanted if n not in done]
    if missing:
        at = end + (len(out) - len(lines))
        add = [ln for n in missing for ln in _new_item(n, wanted[n], dash)]
        out[at:at] = add
    return "".join(out)


def _item_keys(block: list[str]) -> dict[str, int] | None:
    """Line index of each key of one ``- name: …`` item (scalar values only)."""
    keys: dict[str, int] = {}
    base = _indent(block[0])
    for i, ln in enumerate(block):
        if not _is_content(ln):
            continue
        if i > 0 and _indent(ln) != base + 2:
            return None
        m = _VALUE.match(ln)
        if m is None or not m["rest"].strip():
            return None
        keys[m["key"]] = i
    return keys


def _new_item(name: str, fields: dict[str, Any], dash: int) -> list[str]:
    pad = " " * dash
    return [f"{pad}- name: {_scalar(name)}\n"] + [
        f"{pad}  {f}: {_scalar(v)}\n" for f, v in fields.items()
    ]


# ------------------------------------------------------------------ Helm values


def _get(data: Any, key: str, where: str) -> Any:
    node = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UserInputError(f"{where} has no value {key}", concerns=where)
        node = node[part]
    return node


def _has(data: Any, key: str) -> bool:
    try:
        _get(data, key, "")
    except UserInputError:
        return False
    return True


def promote_values(
    source_text: str, target_text: str, keys: list[str], *, source: str, target: str
) -> Edit:
    """The target values file with each dotted ``key`` set to the source's value."""
    import copy

    src = _load(source_text, source) or {}
    data = _load(target_text, target) or {}
    if not isinstance(data, dict):
        raise UserInputError(f"{target} is not a mapping of values", concerns=target)
    edit = Edit(target, target_text, target_text)
    expected = copy.deepcopy(data)
    text: str | None = target_text
    for key in keys:
        value = _get(src, key, source)
        if _has(data, key) and _get(data, key, target) == value:
            continue
        old = _get(data, key, target) if _has(data, key) else "(unset)"
        edit.changes.append(f"value {key}: {_scalar(old)} -> {_scalar(value)}")
        node = expected
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = copy.deepcopy(value)
        text = None if text is None else _set_scalar(text, parts, value)
    if not edit.changes:
        return edit
    if text is None or _load(text, target) != expected:
        text, edit.method = _redump(expected), "re-dump"
    edit.after = text
    return edit


def _set_scalar(text: str, path: list[str], value: Any) -> str | None:
    """``text`` with the scalar at ``path`` of nested block mappings replaced; None
    when it is not there as a one-line scalar (the caller then re-dumps)."""
    if isinstance(value, (dict, list)):
        return None
    lines = text.splitlines(keepends=True)
    start, end, parent = 0, len(lines), -1
    for depth, key in enumerate(path):
        child = next((_indent(ln) for ln in lines[start:end] if _is_content(ln)), None)
        if child is None or child <= parent:
            return None
        found = None
        for i in range(start, end):
            ln = lines[i]
            if _is_content(ln) and _indent(ln) == child:
                m = _VALUE.match(ln)
                if m is not None and m["key"] == key and not ln.lstrip().startswith("-"):
                    found = i
                    break
        if found is None:
            return None
        if depth == len(path) - 1:
            m = _VALUE.match(lines[found])
            assert m is not None
            raw, _ = _split_comment(m["rest"])
            if not raw.strip() or raw.strip()[0] in "|>&*[{!":
                return None
            lines[found] = _replace_value(lines[found], value)
            return "".join(lines)
        start, parent = found + 1, child
        end = next(
            (j for j in range(start, end) if _is_content(lines[j]) and _indent(lines[j]) <= child),
            end,
        )
    return None


# ------------------------------------------------------------------ the command


def _norm_path(path: str, what: str) -> str:
    p = path.strip().strip("/")
    while p.startswith("./"):
        p = p[2:]
    if not p or p == "." or any(part in ("", "..") for part in p.split("/")):
        raise fail(f"{what} must be a path inside the repository, not {path!r}")
    return p


def _kustomization(work: WorkingCopy, path: str) -> str | None:
    for name in KUSTOMIZATION_FILES:
        if work.file(f"{path}/{name}").is_file():
            return f"{path}/{name}"
    return None


def plan_promotion(
    work: WorkingCopy,
    src: str,
    dst: str,
    *,
    images: bool,
    helm_keys: list[str],
    values_file: str,
) -> list[Edit]:
    """The edits that bring ``dst`` to ``src``'s images and values, read from ``work``."""
    edits: list[Edit] = []
    if not work.file(src).is_dir():
        raise UserInputError(f"path {src} not found at {work.base}", concerns=src)
    if not work.file(dst).is_dir():
        raise UserInputError(f"path {dst} not found at {work.base}", concerns=dst)
    if images:
        s, t = _kustomization(work, src), _kustomization(work, dst)
        if s is None or t is None:
            raise UserInputError(
                f"--images needs a kustomization in both paths ({src if s is None else dst} has "
                "none); promote Helm values with --helm-values",
                concerns=src if s is None else dst,
            )
        edits.append(promote_images(work.read_text(s), work.read_text(t), source=s, target=t))
    if helm_keys:
        s, t = f"{src}/{values_file}", f"{dst}/{values_file}"
        for p in (s, t):
            if not work.file(p).is_file():
                raise UserInputError(f"values file {p} not found", concerns=p)
        edits.append(
            promote_values(work.read_text(s), work.read_text(t), helm_keys, source=s, target=t)
        )
    return [e for e in edits if e.changes]


@dataclass(frozen=True)
class _Target:
    repo: str
    revision: str
    project: str


async def _target(kube: KubeClient, dst: str, repo: str | None, revision: str | None) -> _Target:
    """The repository and branch to write: ``--repo``, else the one app whose path is ``dst``."""
    from gitmoor.engine import store

    apps = [
        a
        for a in await store.list_apps(kube, State.namespace)
        if a.spec.source.path.strip().strip("/").removeprefix("./") == dst
        and (repo is None or _same_repo(a.spec.source.repo_url, repo))
    ]
    if repo is None and len(apps) != 1:
        names = ", ".join(a.name for a in apps) or "none"
        raise UserInputError(
            f"--repo is needed: {len(apps)} Applications in {State.namespace} have path {dst} "
            f"({names})"
        )
    app = apps[0] if len(apps) == 1 else None
    url = repo or (app.spec.source.repo_url if app else "")
    rev = revision
    if rev is None:
        target_rev = app.spec.source.target_revision if app else ""
        rev = target_rev if target_rev and target_rev != "HEAD" else "main"
    return _Target(url, rev, app.spec.project if app else "default")


def _same_repo(a: str, b: str) -> bool:
    from gitmoor.source import normalize_repo_url

    try:
        return normalize_repo_url(a) == normalize_repo_url(b)
    except UserInputError:
        return a == b


def promote(
    from_path: Annotated[
        str, typer.Option("--from", help="the source environment's path in the repository")
    ],
    to_path: Annotated[
        str, typer.Option("--to", help="the target environment's path (the one edited)")
    ],
    repo: Annotated[
        str | None,
        typer.Option(
            help="repository URL (default: the repoURL of the one Application whose path is --to)"
        ),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(help="branch to read (default: that Application's targetRevision, else main)"),
    ] = None,
    images: Annotated[
        bool,
        typer.Option(
            "--images",
            help="copy the kustomization's images: (newName/newTag/digest); the default "
            "when --helm-values is not given",
        ),
    ] = False,
    helm_values: Annotated[
        str | None,
        typer.Option(
            "--helm-values",
            metavar="KEYS",
            help="comma-separated dotted keys of the values file to copy (image.tag,replicaCount)",
        ),
    ] = None,
    values_file: Annotated[
        str, typer.Option(help="the values file in each path, for --helm-values")
    ] = "values.yaml",
    branch: Annotated[
        str | None,
        typer.Option(
            help="push the commit to this new branch (for a pull request); refused if it "
            "exists (the branch read included) or is not a valid git branch name"
        ),
    ] = None,
    push: Annotated[
        bool, typer.Option("--push", help="push the commit to the branch read (--revision)")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the change as a unified diff; write nothing")
    ] = False,
    author_name: Annotated[str, typer.Option(help="commit author name")] = "gitmoor",
    author_email: Annotated[str, typer.Option(help="commit author email")] = "gitmoor@localhost",
) -> None:
    """Copy image tags (kustomize `images:`) or chosen Helm values from one environment's
    path to another's, as one Git commit.

    Reads --revision of the repository with its stored credentials (`gitmoor repo
    add`), edits the target's kustomization (or values file) in place, keeping its
    comments and order, and commits with a message naming the source path and
    commit. --push pushes to the branch read, --branch B to a new branch B. The
    push is refused, and nothing is written, when the branch moved since it was
    read ("the branch main moved since gitmoor read it (was X, now Y); run
    again"). Nothing to promote: says so and exits 0 without a commit.
    """
    import asyncio

    src = _norm_path(from_path, "--from")
    dst = _norm_path(to_path, "--to")
    if src == dst:
        raise fail("--from and --to name the same path")
    if branch and push:
        raise fail("give --branch B (a new branch) or --push (the branch read), not both")
    if not (branch or push or dry_run):
        raise fail("say where the commit goes: --push, --branch B, or --dry-run to only show it")
    from gitmoor.source import check_branch_name

    try:
        # git's own rules, said now rather than as a push refused at the end
        if branch is not None:
            check_branch_name(branch, option="--branch")
        if revision is not None:
            check_branch_name(revision.removeprefix("refs/heads/"), option="--revision")
    except UserInputError as e:
        raise fail(str(e)) from None
    keys = [k.strip() for k in (helm_values or "").split(",") if k.strip()]
    do_images = images or not keys
    from gitmoor.source.push import Author as CommitAuthor

    author = CommitAuthor(author_name, author_email)

    async def go(kube: KubeClient) -> None:
        from gitmoor.settings.repos import credentials_for, load_credentials

        target = await _target(kube, dst, repo, revision)
        read = target.revision.removeprefix("refs/heads/")
        if branch is not None and branch.removeprefix("refs/heads/") == read:
            # --branch is for a new branch (a pull request); pushing to the branch
            # read is --push, which says so.
            raise UserInputError(
                f"--branch {branch} is the branch read ({read}), which exists: --branch "
                "pushes to a new branch only; use --push to push to the branch read",
                concerns="--branch",
            )
        creds = credentials_for(
            target.repo, await load_credentials(kube, State.namespace), target.project
        )
        await asyncio.to_thread(
            _promote_in_git,
            target,
            creds,
            src,
            dst,
            do_images,
            keys,
            values_file,
            branch,
            dry_run,
            author,
        )

    run(go)


def _promote_in_git(
    target: _Target,
    creds: RepoCredentials | None,
    src: str,
    dst: str,
    images: bool,
    keys: list[str],
    values_file: str,
    branch: str | None,
    dry_run: bool,
    author: Author,
) -> None:
    from gitmoor.source.push import open_branch

    with open_branch(target.repo, target.revision, creds) as work:
        edits = plan_promotion(
            work, src, dst, images=images, helm_keys=keys, values_file=values_file
        )
        base = work.base or ""
        if not edits:
            out.print(f"nothing to promote: {dst} already has what {src} has at {base[:12]}")
            return
        for e in edits:
            if e.method == "re-dump":
                out.print(
                    f"note: {e.path} was rewritten whole (its shape defeats a line edit); "
                    "its comments are not kept"
                )
        if dry_run:
            for e in edits:
                out.print(e.diff(), end="", markup=False)
            return
        for e in edits:
            work.file(e.path).write_text(e.after)
        changes = [c for e in edits for c in e.changes]
        message = f"promote {src} to {dst}\n\nFrom {src} at {base}:\n" + "".join(
            f"- {c}\n" for c in changes
        )
        result = work.commit_and_push(message, author=author, to_branch=branch)
        if result.commit is None:
            out.print(f"nothing to promote: {dst} already has what {src} has at {base[:12]}")
            return
        for c in changes:
            out.print(f"  {c}")
        out.print(
            f"promoted {src} ({base[:12]}) to {dst}: commit {result.commit[:12]} pushed to "
            f"{result.branch}"
        )
