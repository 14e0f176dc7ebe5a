"""The limits every render runs under, in one place (README, "Rendering" → "Limits").

A repository is input from whoever can push to it, and the controller renders
every app in one process: a file, a YAML document or a tool run that grows
without bound would stall or kill every other app. So each limit below ends a
render in a ``UserInputError`` that names the file, never in a hang, an
out-of-memory kill or a ``RecursionError``.

The figures follow what the tools we mirror do:

- Argo CD's repo-server caps what one app may render
  (``reposerver.max.combined.directory.manifests.size``) and the size of the
  files it reads; an object larger than etcd's request limit (1.5 MiB by
  default) cannot be applied anyway, so megabytes per file are generous.
- go-yaml, the decoder behind ``kubectl apply``, refuses "excessive aliasing"
  once alias expansion dominates a document (its fix for the "billion laughs"
  attack, CVE-2019-11253); libyaml, under PyYAML's C loader, refuses nesting
  deeper than 1000 levels. Ours are tighter, because the Python objects we build
  are copied and serialised recursively later.
"""

from __future__ import annotations

#: Largest file render/ reads or lets a tool read (a manifest, a kustomization,
#: a chart's file), checked with ``stat`` before the file is opened.
MAX_FILE_BYTES = 8 << 20

#: Most one app may render: the sum of the manifest files of a directory app,
#: or the standard output of ``kubectl kustomize`` / ``helm template``; the
#: tool is killed as soon as its output passes it.
MAX_RENDER_BYTES = 32 << 20

#: Most of a tool's standard error kept: beyond it the tool is killed too.
MAX_TOOL_STDERR_BYTES = 1 << 20

#: Deepest nesting of YAML collections (mappings and sequences), aliases
#: followed. The deepest Kubernetes objects, CRDs with large OpenAPI schemas,
#: stay well below it: Gateway API's measure 24 levels, the Prometheus
#: operator's 23.
MAX_YAML_DEPTH = 100

#: Every text is allowed this many YAML nodes, aliases expanded...
MIN_YAML_NODES = 100_000
#: ...or this many per character of the text, whichever is more. A text without
#: aliases holds at most about one node per character, so only alias expansion
#: can reach the budget: it may at most double what the text itself holds.
YAML_NODES_PER_CHAR = 2


def mib(n: int) -> str:
    """``n`` bytes for a message: ``8 MiB``, ``1.5 MiB``."""
    return f"{n / (1 << 20):.1f}".removesuffix(".0") + " MiB"
