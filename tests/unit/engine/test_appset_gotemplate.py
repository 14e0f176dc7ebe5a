"""The Go template subset ApplicationSet templates use, checked against what
Go's text/template and Sprig print for the same input."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gitmoor.engine.appset._gotemplate import GoTemplateError, normalize, render

DATA: dict[str, Any] = {
    "path": {
        "path": "apps/web/overlays/dev",
        "basename": "dev",
        "segments": ["apps", "web", "overlays", "dev"],
    },
    "name": "Edge_Cluster.1",
    "n": 3,
    "on": True,
    "empty": "",
    "labels": {"b": "2", "a": "1"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.path.basename}}", "dev"),
        ("{{ index .path.segments 1 }}", "web"),
        ("{{ .labels }}", "map[a:1 b:2]"),
        ("{{ .path.segments }}", "[apps web overlays dev]"),
        ("{{ .n }} {{ .on }}", "3 true"),
        ('a {{- "b" -}} c', "abc"),
        ("a  {{- /* comment */ -}}  c", "ac"),
        ('{{ if eq .path.basename "prod" }}p{{ else if .on }}on{{ else }}off{{ end }}', "on"),
        ("{{ with .empty }}set{{ else }}unset{{ end }}", "unset"),
        ("{{ range $k, $v := .labels }}{{ $k }}={{ $v }},{{ end }}", "a=1,b=2,"),
        (
            '{{ range .path.segments }}{{ if eq . "overlays" }}{{ break }}{{ end }}{{ . }}/{{ end }}',
            "apps/web/",
        ),
        ("{{ range $i, $e := list }}x{{ else }}none{{ end }}", "none"),
        ("{{ $x := .n }}{{ if gt $x 2 }}{{ $x = 0 }}{{ end }}{{ $x }}", "0"),
        ("{{ $.path.basename }}", "dev"),
        ('{{ printf "%s-%02d-%v-%q" .path.basename .n .on "x" }}', 'dev-03-true-"x"'),
        ("{{ .name | normalize }}", "edge-cluster.1"),
        ('{{ .name | lower | replace "_" "-" | trunc 7 }}', "edge-cl"),
        ('{{ .missing | default "d" }} {{ .empty | default "e" }}', "d e"),
        ('{{ coalesce .empty .missing "c" }}', "c"),
        ('{{ ternary "yes" "no" .on }}', "yes"),
        ('{{ join "/" .path.segments }}', "apps/web/overlays/dev"),
        ('{{ splitList "/" .path.path | last }}', "dev"),
        ('{{ hasPrefix "apps/" .path.path }} {{ hasSuffix "x" .path.path }}', "true false"),
        ('{{ trimPrefix "apps/" .path.path | trimSuffix "/dev" }}', "web/overlays"),
        ("{{ quote .n }} {{ squote .path.basename }}", "\"3\" 'dev'"),
        ("{{ toJson .labels }}", '{"a":"1","b":"2"}'),
        ("{{ toYaml .labels }}", "a: '1'\nb: '2'"),
        ('{{ (fromYaml "x: 1").x }}', "1"),
        ("{{ add .n 2 }} {{ sub .n 1 }} {{ mul .n 3 }} {{ div 7 2 }} {{ mod 7 2 }}", "5 2 9 3 1"),
        ("{{ and .on .n }} {{ or .empty .n }} {{ not .on }}", "3 3 false"),
        ("{{ len .path.segments }} {{ len .name }}", "4 14"),
        ('{{ get .labels "a" }} {{ hasKey .labels "z" }}', "1 false"),
        ('{{ dig "path" "basename" "x" . }}', "dev"),
        ('{{ regexReplaceAll "[^a-z]" .name "" }}', "dgeluster"),
        ('{{ regexMatch "^E" .name }}', "true"),
        ("{{ slugify .name }}", "edge-cluster-1"),
        ("{{ upper (index .path.segments 0) }}", "APPS"),
        ('{{ "a\\tb" }}', "a\tb"),
        ("{{ `raw\\n` }}", "raw\\n"),
        ("{{ .missing }}", "<no value>"),
        ('{{ sha256sum "x" | trunc 8 }}', "2d711642"),
        ('{{ b64enc "hi" }}', "aGk="),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ .nope }}", 'map has no entry for key "nope"'),
        ("{{ .path.nope }}", 'map has no entry for key "nope"'),
        ("{{ nosuch 1 }}", 'function "nosuch" not defined'),
        ("{{ if .on }}x", "has no {{end}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ .n.x }}", "can't evaluate field x in type int"),
        ("{{ index .path.segments 9 }}", "index out of range: 9"),
        ('{{ required "need it" .empty }}', "need it"),
        ('{{ template "x" }}', "not supported"),
        ("{{ $undefined }}", 'undefined variable "$undefined"'),
        ("{{ .n | 1 }}", "can't give argument to non-function 1"),
        ("{{ (.n }}", "unclosed left paren"),
        ("{{ .n", "unclosed action"),
    ],
)
def test_errors_with_missingkey_error(template: str, message: str) -> None:
    with pytest.raises(GoTemplateError, match=re.escape(message)):
        render(template, DATA, missingkey="error")


def test_normalize_matches_argo_cds_sanitize_name() -> None:
    assert normalize("My_Cluster") == "my-cluster"
    assert normalize("-a.b_c-") == "a.b-c"
    assert len(normalize("x" * 300)) == 253
