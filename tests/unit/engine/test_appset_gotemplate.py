"""The Go template subset ApplicationSet templates use, checked against what
Go's text/template and Sprig print for the same input."""

from __future__ import annotations

import re
import subprocess
import sys
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


@pytest.mark.parametrize(
    ("template", "message"),
    [
        # Hostile or careless templates fail with a message instead of taking the
        # controller's memory or its event loop.
        ('{{ repeat 3000000000 "x" }}', "error calling repeat: result larger than"),
        ("{{ until 300000000 }}", "error calling until: more than"),
        ("{{ range 300000000 }}{{ end }}", "range over 300000000: more than"),
        ('{{ printf "%0999999999d" 1 }}', "width or precision over"),
        ('{{ indent 3000000000 "x" }}', "error calling indent: result larger than"),
        ("{{ $l := list 1 }}{{ range until 64 }}{{ $l = concat $l $l }}{{ end }}", "larger than"),
        ('{{ $s := "" }}{{ range until 500000 }}{{ $s = cat $s "x" }}{{ end }}', "too much work"),
        ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nests too deeply"),
        ("{{ 1e400 }}", "bad number syntax"),
    ],
)
def test_limits_refuse_runaway_templates(template: str, message: str) -> None:
    with pytest.raises(GoTemplateError, match=re.escape(message)):
        render(template, DATA)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # Go's int64 wraps; a loop of squarings stays a number, not a huge one
        ("{{ $x := 2 }}{{ range 7 }}{{ $x = mul $x $x }}{{ end }}{{ $x }}", "0"),
        ("{{ add 9223372036854775807 1 }}", "-9223372036854775808"),
        ('{{ float64 "inf" }} {{ float64 "nan" }} {{ int "1e999" }}', "+Inf NaN 0"),
        ("{{ until -3 }}", "[0 -1 -2]"),  # Sprig counts down
        # Go's Regexp.Expand: a missing group is empty, a backslash is literal
        ('{{ regexReplaceAll "a" "abc" "$1" }}', "bc"),
        ('{{ regexReplaceAll "(?P<x>b)" "abc" "[${x}$$\\\\p]" }}', "a[b$\\p]c"),
    ],
)
def test_numbers_behave_as_go_int64_and_float64(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # RE2's syntax, which Go's regexp shares and Python's re does not read
        (r'{{ regexFind `(?<v>\d+)` "v12" }}', "12"),
        (r'{{ regexFind `\pL+` "12héllo" }}', "héllo"),
        (r'{{ regexFind `(?U)a+` "aaa" }}', "a"),
        # $ is the end of the text only, not before a final newline
        ('{{ regexMatch "a$" "a\\n" }}', "false"),
        # Go's FindAll/ReplaceAll skip an empty match right after a match
        ('{{ regexReplaceAll "x*" "abxd" "-" }}', "-a-b-d-"),
        ('{{ regexFindAll "a*" "baaac" -1 }}', "[ aaa ]"),
        # the examples of Go's regexp documentation
        ('{{ regexFindAll "a." "paranormal" -1 }}', "[ar an al]"),
        ('{{ regexFindAll "a." "paranormal" 2 }}', "[ar an]"),
        ('{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}', "-W-xxW-"),
        ('{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1W" }}', "---"),
        ('{{ regexReplaceAllLiteral "a(x*)b" "-ab-axxb-" "${1}" }}', "-${1}-${1}-"),
        ('{{ regexSplit "a*" "abaabaccadaaae" 5 }}', "[ b b c cadaaae]"),
        ('{{ regexSplit "" "abc" -1 }}', "[a b c]"),
        ('{{ regexSplit "(,)" "a,b,c" -1 }}', "[a b c]"),
        ('{{ regexSplit "," "a,b" 0 }}', "[]"),
        ('{{ regexQuoteMeta "1.5-2.0?" }}', "1\\.5-2\\.0\\?"),
    ],
)
def test_regex_functions_are_go_regexp(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


@pytest.mark.parametrize(
    "pattern",
    [r"(?=a)", r"(a)\1", r"\Ca", "(a"],
)
def test_regex_go_refuses_is_refused(pattern: str) -> None:
    # Lookaround and backreferences are not RE2 (Go refuses them at compile);
    # Python's re would run them, with its exponential worst case.
    with pytest.raises(GoTemplateError, match="error calling regexMatch: error parsing regexp"):
        render("{{ regexMatch .p .s }}", {"p": pattern, "s": "aa"})


def test_regex_is_linear_time_on_a_backtracking_pattern() -> None:
    """``^(a+)+$`` against 64 a's and a b: a backtracking engine tries 2**64
    ways (Python's re took 13 s for 29 characters, blocking the event loop every
    ApplicationSet shares); RE2 answers at once. Run in a child process so that a
    backtracking engine fails the test at the deadline instead of hanging the run."""
    code = (
        "from gitmoor.engine.appset._gotemplate import render\n"
        "print(render('{{ regexMatch \"^(a+)+$\" .s }}', {'s': 'a' * 64 + 'b'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "false"
