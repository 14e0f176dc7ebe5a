"""ApplicationSet templating on plain data: Argo CD's fasttemplate and Go
template syntaxes, the generator's template override, and errors that name the
generator, the element and the field."""

from __future__ import annotations

from typing import Any

import pytest

from gitmoor.engine.appset import TemplateError, render_application
from gitmoor.engine.appset.template import GeneratedParams, merge_template, render_fast
from gitmoor.model.appset import APPSET_LABEL, ApplicationSet, parse_appset

TEMPLATE: dict[str, Any] = {
    "metadata": {"name": "{{path.basename}}-guestbook", "labels": {"env": "{{path.basename}}"}},
    "spec": {
        "project": "default",
        "source": {"repoURL": "https://git.example/repo.git", "path": "{{path}}"},
        "destination": {"name": "in-cluster", "namespace": "{{path.basename}}"},
    },
}


def appset(
    template: dict[str, Any] | None = None,
    *,
    go: bool = False,
    options: list[str] | None = None,
    generators: list[dict[str, Any]] | None = None,
) -> ApplicationSet:
    spec: dict[str, Any] = {
        "generators": generators or [{"list": {"elements": []}}],
        "template": template or TEMPLATE,
    }
    if go:
        spec["goTemplate"] = True
    if options:
        spec["goTemplateOptions"] = options
    return parse_appset(
        {
            "apiVersion": "gitmoor.io/v1alpha1",
            "kind": "ApplicationSet",
            "metadata": {"name": "guestbook", "namespace": "apps", "uid": "u1"},
            "spec": spec,
        }
    )


def test_fasttemplate_renders_known_params_and_keeps_unknown_ones() -> None:
    # Argo CD's fasttemplate writes an unknown tag back unchanged; spaces inside
    # the braces are trimmed.
    assert render_fast("{{ a }}-{{b}}-{{c}}", {"a": "1", "b": "2"}) == "1-2-{{c}}"
    assert render_fast("{{path[1]}}", {"path[1]": "guestbook"}) == "guestbook"


def test_fasttemplate_application() -> None:
    params = {"path": "apps/guestbook/overlays/dev", "path.basename": "dev"}
    app = render_application(appset(), params)
    assert app["apiVersion"] == "gitmoor.io/v1alpha1"
    assert app["kind"] == "Application"
    assert app["metadata"] == {
        "name": "dev-guestbook",
        "namespace": "apps",
        "labels": {"env": "dev", APPSET_LABEL: "guestbook"},
    }
    assert app["spec"]["source"]["path"] == "apps/guestbook/overlays/dev"
    assert app["spec"]["destination"] == {"name": "in-cluster", "namespace": "dev"}


def test_go_template_application_with_functions() -> None:
    template = {
        "metadata": {
            "name": "{{ .cluster.name | normalize }}-{{ index .path.segments 1 }}",
            "annotations": {"owner": '{{ .cluster.owner | default "nobody" | upper }}'},
        },
        "spec": {
            "source": {
                "repoURL": "https://git.example/repo.git",
                "path": "{{ .path.path }}",
                "targetRevision": '{{ if eq .env "prod" }}v1.0.0{{ else }}HEAD{{ end }}',
            },
            "destination": {"name": "{{ .cluster.name }}", "namespace": "{{ trunc 5 .env }}"},
        },
    }
    params = {
        "cluster": {"name": "Edge_1"},
        "env": "production",
        "path": {"path": "apps/guestbook", "segments": ["apps", "guestbook"]},
    }
    app = render_application(appset(template, go=True), params)
    assert app["metadata"]["name"] == "edge-1-guestbook"
    assert app["metadata"]["annotations"] == {"owner": "NOBODY"}
    assert app["spec"]["source"]["targetRevision"] == "HEAD"
    assert app["spec"]["destination"] == {"name": "Edge_1", "namespace": "produ"}


def test_go_template_missing_key_prints_no_value_by_default_and_fails_with_missingkey_error() -> (
    None
):
    template = {
        "metadata": {"name": "app"},
        "spec": {
            "source": {"repoURL": "https://git.example/r.git", "path": "{{ .foo }}"},
            "destination": {"name": "in-cluster", "namespace": "ns"},
        },
    }
    app = render_application(appset(template, go=True), {})
    assert app["spec"]["source"]["path"] == "<no value>"  # Go's default
    strict = appset(template, go=True, options=["missingkey=error"])
    params = GeneratedParams({"bar": 1}, index=0, kind="list", element=2)
    with pytest.raises(TemplateError) as err:
        render_application(strict, params)
    assert str(err.value) == (
        'generators[0] (list) element 2 field spec.source.path: map has no entry for key "foo"'
    )


def test_errors_name_the_generator_passed_by_the_caller() -> None:
    template = dict(TEMPLATE, metadata={"name": "{{ .a.b | nosuchfn }}"})
    with pytest.raises(TemplateError, match=r'git element 4 field metadata.name: .*"nosuchfn"'):
        render_application(appset(template, go=True), {}, generator="git", element=4)


def test_map_keys_are_rendered() -> None:
    template = dict(TEMPLATE, metadata={"name": "x", "labels": {"team-{{team}}": "yes"}})
    app = render_application(appset(template), {"team": "blue"})
    assert app["metadata"]["labels"]["team-blue"] == "yes"


def test_generator_template_override_is_merged_over_the_spec_template() -> None:
    gens = [
        {"list": {"elements": [{"path.basename": "dev"}]}},
        {
            "list": {
                "elements": [{"path.basename": "prod", "path": "p"}],
                "template": {
                    "metadata": {"labels": {"tier": "gold"}},
                    "spec": {"source": {"targetRevision": "stable"}},
                },
            },
        },
    ]
    s = appset(generators=gens)
    plain = render_application(
        s, GeneratedParams({"path": "d", "path.basename": "dev"}, index=0, kind="list", element=0)
    )
    gold = render_application(
        s, GeneratedParams({"path": "p", "path.basename": "prod"}, index=1, kind="list", element=0)
    )
    assert "tier" not in plain["metadata"]["labels"]
    assert plain["spec"]["source"].get("targetRevision", "HEAD") == "HEAD"
    assert gold["metadata"]["labels"]["tier"] == "gold"
    assert gold["metadata"]["labels"]["env"] == "prod"
    assert gold["spec"]["source"] == {
        "repoURL": "https://git.example/repo.git",
        "path": "p",
        "targetRevision": "stable",
    }


def test_merge_template_keeps_base_values_the_override_leaves_empty() -> None:
    base = {"a": {"b": 1, "c": [1]}, "d": "x"}
    assert merge_template(base, {"a": {"c": [2]}, "d": ""}) == {"a": {"b": 1, "c": [2]}, "d": "x"}
    assert base == {"a": {"b": 1, "c": [1]}, "d": "x"}  # not modified


@pytest.mark.parametrize(
    "name", ["Dev_Guestbook", "-dev", "dev-", "a" * 64, "", "{{path.basename}}", "dev/x"]
)
def test_an_invalid_application_name_is_refused(name: str) -> None:
    template = dict(TEMPLATE, metadata={"name": name})
    with pytest.raises(TemplateError, match=r"element 0 field metadata.name: .*not a valid"):
        render_application(appset(template), {"path": "p"})


def test_an_unknown_fasttemplate_param_in_the_name_is_an_invalid_name() -> None:
    with pytest.raises(TemplateError, match=r"metadata\.name: '{{path.basename}}-guestbook'"):
        render_application(appset(), {"path": "p"})


def test_destination_server_of_the_home_cluster_becomes_in_cluster() -> None:
    template = dict(
        TEMPLATE,
        spec=dict(
            TEMPLATE["spec"],
            destination={"server": "https://kubernetes.default.svc", "namespace": "ns"},
        ),
    )
    app = render_application(appset(template), {"path": "p", "path.basename": "dev"})
    assert app["spec"]["destination"] == {"name": "in-cluster", "namespace": "ns"}


def test_destination_server_of_another_cluster_is_refused_not_dropped() -> None:
    template = dict(
        TEMPLATE,
        spec=dict(TEMPLATE["spec"], destination={"server": "{{server}}", "namespace": "ns"}),
    )
    with pytest.raises(TemplateError, match=r"spec.destination.server: 'https://10.0.0.1:6443'"):
        render_application(
            appset(template),
            {"path": "p", "path.basename": "dev", "server": "https://10.0.0.1:6443"},
        )


def test_a_template_that_is_not_an_application_is_refused() -> None:
    template = {"metadata": {"name": "x"}, "spec": {"source": {"repoURL": "r"}}}
    with pytest.raises(TemplateError, match="element 0: Application x is not valid"):
        render_application(appset(template), {})


def test_another_namespace_is_refused() -> None:
    template = dict(TEMPLATE, metadata={"name": "x", "namespace": "{{ns}}"})
    with pytest.raises(TemplateError, match=r"metadata\.namespace: 'other'"):
        render_application(appset(template), {"ns": "other"})
