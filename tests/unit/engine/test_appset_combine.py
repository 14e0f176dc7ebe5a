"""ApplicationSet generators that need no cluster and no git, on plain data:
list (elements, elementsYaml), matrix and merge of lists, the post selector,
and the parameters in fasttemplate and goTemplate shape."""

from __future__ import annotations

from typing import Any, cast

import pytest

from gitmoor.engine.appset import GeneratorContext, GeneratorError, generate, render_application
from gitmoor.engine.appset.template import GeneratedParams
from gitmoor.model.appset import ApplicationSet, parse_appset

#: list, matrix and merge of lists never reach the cluster or git
CTX = GeneratorContext(kube=cast("Any", None), namespace="apps", git_cache_dir=None)


def appset(generators: list[dict[str, Any]], *, go: bool = False) -> ApplicationSet:
    return parse_appset(
        {
            "metadata": {"name": "s", "namespace": "apps", "uid": "u"},
            "spec": {
                "generators": generators,
                "goTemplate": go,
                "template": {
                    "metadata": {"name": "{{name}}"},
                    "spec": {
                        "source": {"repoURL": "https://git.example/r.git", "path": "{{path}}"},
                        "destination": {"name": "in-cluster", "namespace": "{{name}}"},
                    },
                },
            },
        }
    )


async def params(generators: list[dict[str, Any]], *, go: bool = False) -> list[dict[str, Any]]:
    return [dict(p) for p in await generate(appset(generators, go=go), CTX)]


async def test_list_elements_flatten_nested_fields_in_fasttemplate_mode() -> None:
    out = await params(
        [
            {
                "list": {
                    "elements": [
                        {"name": "dev", "replicas": 1, "cluster": {"url": "https://a"}},
                        {"name": "prod", "enabled": True, "values": {"tier": "gold"}},
                    ]
                }
            }
        ]
    )
    assert out == [
        {"name": "dev", "replicas": "1", "cluster.url": "https://a"},
        {"name": "prod", "enabled": "true", "values.tier": "gold"},
    ]


async def test_list_elements_stay_nested_in_go_template_mode() -> None:
    elements = [{"name": "dev", "cluster": {"url": "https://a"}, "n": 2}]
    assert await params([{"list": {"elements": elements}}], go=True) == elements


async def test_elements_yaml() -> None:
    out = await params([{"list": {"elementsYaml": "- name: a\n- name: b\n"}}])
    assert out == [{"name": "a"}, {"name": "b"}]


async def test_generated_params_know_their_generator_and_element() -> None:
    gens = [
        {"list": {"elements": [{"name": "a"}]}},
        {"list": {"elements": [{"name": "b"}, {"name": "c"}]}},
    ]
    out = await generate(appset(gens), CTX)
    assert [(p.index, p.element) for p in out if isinstance(p, GeneratedParams)] == [
        (0, 0),
        (1, 0),
        (1, 1),
    ]


async def test_matrix_is_the_product_and_the_second_uses_the_first() -> None:
    gens = [
        {
            "matrix": {
                "generators": [
                    {"list": {"elements": [{"env": "dev"}, {"env": "prod"}]}},
                    {
                        "list": {
                            "elementsYaml": "- name: a-{{env}}\n- name: b-{{env}}\n",
                        }
                    },
                ]
            }
        }
    ]
    out = await params(gens)
    assert out == [
        {"env": "dev", "name": "a-dev"},
        {"env": "dev", "name": "b-dev"},
        {"env": "prod", "name": "a-prod"},
        {"env": "prod", "name": "b-prod"},
    ]


async def test_matrix_go_template_interpolates_the_second_generator() -> None:
    gens = [
        {
            "matrix": {
                "generators": [
                    {"list": {"elements": [{"env": "dev", "shared": {"a": 1}}]}},
                    {"list": {"elements": [{"name": "{{ .env | upper }}", "shared": {"b": 2}}]}},
                ]
            }
        }
    ]
    assert await params(gens, go=True) == [
        {"env": "dev", "name": "DEV", "shared": {"a": 1, "b": 2}}
    ]


async def test_matrix_conflicting_keys_are_refused_in_fasttemplate_mode() -> None:
    gens = [
        {
            "matrix": {
                "generators": [
                    {"list": {"elements": [{"name": "a"}]}},
                    {"list": {"elements": [{"name": "b"}]}},
                ]
            }
        }
    ]
    with pytest.raises(GeneratorError, match="found duplicate key name with different value"):
        await params(gens)


async def test_matrix_of_matrix() -> None:
    inner = {
        "matrix": {
            "generators": [
                {"list": {"elements": [{"a": "1"}, {"a": "2"}]}},
                {"list": {"elements": [{"b": "x"}]}},
            ]
        }
    }
    gens = [{"matrix": {"generators": [inner, {"list": {"elements": [{"c": "y"}, {"c": "z"}]}}]}}]
    out = await params(gens)
    assert [(p["a"], p["b"], p["c"]) for p in out] == [
        ("1", "x", "y"),
        ("1", "x", "z"),
        ("2", "x", "y"),
        ("2", "x", "z"),
    ]


async def test_merge_overrides_base_by_key_and_drops_unmatched() -> None:
    gens = [
        {
            "merge": {
                "mergeKeys": ["server"],
                "generators": [
                    {
                        "list": {
                            "elements": [
                                {"server": "a", "kafka": "true", "redis": "false"},
                                {"server": "b", "kafka": "true", "redis": "false"},
                            ]
                        }
                    },
                    {"list": {"elements": [{"server": "b", "kafka": "false"}, {"server": "z"}]}},
                    {"list": {"elements": [{"server": "b", "redis": "true"}]}},
                ],
            }
        }
    ]
    assert await params(gens) == [
        {"server": "a", "kafka": "true", "redis": "false"},
        {"server": "b", "kafka": "false", "redis": "true"},
    ]


async def test_merge_go_template_keys_may_be_nested() -> None:
    gens = [
        {
            "merge": {
                "mergeKeys": ["cluster.name"],
                "generators": [
                    {"list": {"elements": [{"cluster": {"name": "a"}, "v": {"x": 1, "y": 1}}]}},
                    {"list": {"elements": [{"cluster": {"name": "a"}, "v": {"y": 2}}]}},
                ],
            }
        }
    ]
    assert await params(gens, go=True) == [{"cluster": {"name": "a"}, "v": {"x": 1, "y": 2}}]


async def test_merge_refuses_a_generator_not_unique_by_the_keys() -> None:
    gens = [
        {
            "merge": {
                "mergeKeys": ["server"],
                "generators": [
                    {"list": {"elements": [{"server": "a"}]}},
                    {"list": {"elements": [{"server": "a"}, {"server": "a"}]}},
                ],
            }
        }
    ]
    with pytest.raises(
        GeneratorError, match=r"generators\[1\] \(list\): the parameters .* not unique"
    ):
        await params(gens)


async def test_post_selector_filters_params() -> None:
    gens = [
        {
            "list": {"elements": [{"name": "a", "env": "staging"}, {"name": "b", "env": "prod"}]},
            "selector": {
                "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]
            },
        }
    ]
    assert await params(gens) == [{"name": "a", "env": "staging"}]


BOMB = "\n".join(
    [
        '- a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]',
        *(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)),
        "  top: *a7",
    ]
)


@pytest.mark.parametrize(
    ("gens", "message"),
    [
        ([{"list": {}}], r"generators\[0\] \(list\): list needs elements or elementsYaml"),
        ([{"list": {"elements": ["a"]}}], r"generators\[0\] \(list\) element 0: must be an object"),
        ([{"list": {"elementsYaml": "a: [b"}}], "elementsYaml is not YAML"),
        ([{"list": {"elementsYaml": "a: b"}}], "elementsYaml must be a YAML list"),
        # an alias "billion laughs" (400 bytes, 10^8 leaves once expanded) is refused
        # by the loader's node budget rather than flattened on the event loop
        ([{"list": {"elementsYaml": BOMB}}], "too many aliases"),
        (
            [
                {
                    "list": {"elements": [{}]},
                    "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]},
                }
            ],
            "operator must be In, NotIn, Exists or DoesNotExist",
        ),
    ],
)
async def test_bad_list_generators_are_refused(gens: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(GeneratorError, match=message):
        await params(gens)


async def test_generate_then_render_names_the_element() -> None:
    s = appset(
        [{"list": {"elements": [{"name": "ok", "path": "p"}, {"name": "Not_OK", "path": "p"}]}}]
    )
    out = await generate(s, CTX)
    assert render_application(s, out[0])["metadata"]["name"] == "ok"
    with pytest.raises(Exception, match=r"generators\[0\] \(list\) element 1 field metadata.name"):
        render_application(s, out[1])
