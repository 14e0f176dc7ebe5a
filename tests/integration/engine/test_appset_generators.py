"""ApplicationSet generators against the real world: git directories and files
from a real git repository, and the clusters generator over cluster Secrets
registered in the test's namespace of the real control plane."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.engine.appset import GeneratorContext, GeneratorError, generate, render_application
from gitmoor.kube import load_kubeconfig
from gitmoor.model.appset import ApplicationSet, parse_appset
from gitmoor.model.errors import GitmoorError
from gitmoor.settings.clusters import cluster_secret
from gitmoor.settings.repos import add_repo
from support.githttp import PASSWORD, USER, GitHTTPServer
from support.gitrepo import GitRepo

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.kube import KubeClient

KUSTOMIZATION = "resources: []\n"


def appset(
    generators: list[dict[str, Any]], *, go: bool = False, name: str = "{{path.basename}}"
) -> ApplicationSet:
    return parse_appset(
        {
            "metadata": {"name": "set", "namespace": "apps", "uid": "u"},
            "spec": {
                "generators": generators,
                "goTemplate": go,
                "template": {
                    "metadata": {"name": name},
                    "spec": {
                        "source": {"repoURL": "https://git.example/r.git", "path": "x"},
                        "destination": {"name": "in-cluster", "namespace": "default"},
                    },
                },
            },
        }
    )


@pytest.fixture
def ctx(kube: KubeClient, namespace: str, git_cache: Path) -> GeneratorContext:
    return GeneratorContext(kube=kube, namespace=namespace, git_cache_dir=git_cache)


@pytest.fixture
def overlays(repo: GitRepo) -> GitRepo:
    files = {
        f"apps/{app}/overlays/{env}/kustomization.yaml": KUSTOMIZATION
        for app, env in [
            ("guestbook", "dev"),
            ("guestbook", "prod"),
            ("api", "dev"),
            ("api", "test"),
        ]
    }
    files["apps/guestbook/base/kustomization.yaml"] = KUSTOMIZATION
    files["apps/.hidden/overlays/dev/kustomization.yaml"] = KUSTOMIZATION
    repo.commit(files)
    return repo


def dirs_generator(repo: GitRepo, *extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "git": {
            "repoURL": repo.url,
            "revision": "main",
            "directories": [{"path": "apps/*/overlays/*"}, *extra],
        }
    }


async def test_git_directories_one_element_per_overlay_and_new_overlays_appear(
    overlays: GitRepo, ctx: GeneratorContext
) -> None:
    s = appset([dirs_generator(overlays)])
    out = await generate(s, ctx)
    assert [p["path"] for p in out] == [
        "apps/api/overlays/dev",
        "apps/api/overlays/test",
        "apps/guestbook/overlays/dev",
        "apps/guestbook/overlays/prod",
    ]
    assert dict(out[3]) == {
        "path": "apps/guestbook/overlays/prod",
        "path.basename": "prod",
        "path.basenameNormalized": "prod",
        "path[0]": "apps",
        "path[1]": "guestbook",
        "path[2]": "overlays",
        "path[3]": "prod",
    }
    named = appset([dirs_generator(overlays)], name="{{path[1]}}-{{path.basename}}")
    assert [render_application(named, p)["metadata"]["name"] for p in out] == [
        "api-dev",
        "api-test",
        "guestbook-dev",
        "guestbook-prod",
    ]

    overlays.commit({"apps/api/overlays/prod/kustomization.yaml": KUSTOMIZATION})
    assert "apps/api/overlays/prod" in [p["path"] for p in await generate(s, ctx)]


async def test_git_directories_exclude_wins_whatever_the_order(
    overlays: GitRepo, ctx: GeneratorContext
) -> None:
    # The exclude comes first and a later include names the directory again:
    # Argo CD's rule is that any matching exclude wins.
    gen = {
        "git": {
            "repoURL": overlays.url,
            "directories": [
                {"path": "apps/*/overlays/prod", "exclude": True},
                {"path": "apps/*/overlays/*"},
                {"path": "apps/guestbook/overlays/prod"},
                {"path": "apps/api/overlays/[t]*", "exclude": True},
            ],
        }
    }
    out = await generate(appset([gen]), ctx)
    assert [p["path"] for p in out] == ["apps/api/overlays/dev", "apps/guestbook/overlays/dev"]


async def test_git_directories_go_template_params(overlays: GitRepo, ctx: GeneratorContext) -> None:
    s = appset(
        [dirs_generator(overlays)],
        go=True,
        name="{{ index .path.segments 1 }}-{{ .path.basename }}",
    )
    out = await generate(s, ctx)
    assert out[0]["path"] == {
        "path": "apps/api/overlays/dev",
        "basename": "dev",
        "basenameNormalized": "dev",
        "segments": ["apps", "api", "overlays", "dev"],
    }
    app = render_application(s, out[0])
    assert app["metadata"]["name"] == "api-dev"


async def test_git_files_fields_become_params(repo: GitRepo, ctx: GeneratorContext) -> None:
    repo.commit(
        {
            "clusters/dev/config.json": '{"cluster": {"name": "dev", "address": "https://1.2.3.4"}, "replicas": 1}',
            "clusters/prod/config.json": '{"cluster": {"name": "prod", "address": "https://2.4.6.8"}, "replicas": 3}',
            "envs/eu/west/envs.yaml": "- env: eu-west-a\n- env: eu-west-b\n",
            "clusters/notes.txt": "not a config",
        }
    )
    gen = {
        "git": {
            "repoURL": repo.url,
            "files": [{"path": "clusters/*/config.json"}, {"path": "envs/**/envs.yaml"}],
            "values": {"where": "{{path.basename}}"},
        }
    }
    out = [dict(p) for p in await generate(appset([gen]), ctx)]
    assert out[0] == {
        "cluster.name": "dev",
        "cluster.address": "https://1.2.3.4",
        "replicas": "1",
        "path": "clusters/dev",
        "path.basename": "dev",
        "path.basenameNormalized": "dev",
        "path.filename": "config.json",
        "path.filenameNormalized": "config.json",
        "path[0]": "clusters",
        "path[1]": "dev",
        "values.where": "dev",
    }
    assert out[1]["cluster.name"] == "prod"
    # a file holding a list yields one element per item
    assert [(p["env"], p["path"]) for p in out[2:]] == [
        ("eu-west-a", "envs/eu/west"),
        ("eu-west-b", "envs/eu/west"),
    ]

    gen["git"]["values"] = {"where": "{{ .path.basename | upper }}"}
    go = await generate(appset([gen], go=True), ctx)
    assert go[0]["cluster"] == {"name": "dev", "address": "https://1.2.3.4"}
    assert go[0]["replicas"] == 1
    assert go[0]["path"]["filename"] == "config.json"
    assert go[0]["values"] == {"where": "DEV"}


async def test_git_hostile_input(repo: GitRepo, ctx: GeneratorContext) -> None:
    repo.commit({"bad/config.yaml": "a: [unclosed\n", "scalar/config.yaml": "just a string\n"})

    async def fails(gen: dict[str, Any], message: str) -> None:
        with pytest.raises(GeneratorError, match=message):
            await generate(appset([gen]), ctx)

    await fails(
        {"git": {"repoURL": repo.url, "files": [{"path": "bad/*.yaml"}]}},
        r"generators\[0\] \(git\) file bad/config.yaml: not JSON or YAML",
    )
    await fails(
        {"git": {"repoURL": repo.url, "files": [{"path": "scalar/*.yaml"}]}},
        "scalar/config.yaml: must be an object",
    )
    await fails(
        {"git": {"repoURL": repo.url, "directories": [{"path": "../../etc/*"}]}},
        r"directories\[0\].path '../../etc/\*' leaves the repository",
    )
    await fails(
        {"git": {"repoURL": repo.url, "directories": [{"path": "*"}], "files": [{"path": "*"}]}},
        "exactly one of directories and files",
    )
    await fails(
        {
            "git": {
                "repoURL": repo.url,
                "revision": "no-such-branch",
                "directories": [{"path": "*"}],
            }
        },
        r"generators\[0\] \(git\)",
    )


async def register(
    kube: KubeClient, kubeconfig: Path, namespace: str, name: str, labels: dict[str, str]
) -> None:
    secret = cluster_secret(name, load_kubeconfig(kubeconfig), namespace=namespace)
    secret["metadata"]["labels"].update(labels)
    secret["metadata"]["annotations"] = {"owner": f"team-{name}"}
    await kube.apply(secret, force=True)


async def test_clusters_generator_selects_registered_clusters(
    kube: KubeClient, kubeconfig: Path, namespace: str, ctx: GeneratorContext
) -> None:
    await register(kube, kubeconfig, namespace, "staging_1", {"env": "staging"})
    await register(kube, kubeconfig, namespace, "prod-1", {"env": "prod", "tier": "gold"})
    server = load_kubeconfig(kubeconfig).server

    every = await generate(appset([{"clusters": {}}], name="{{nameNormalized}}"), ctx)
    # the home cluster is there too when the selector is empty (Argo CD's in-cluster)
    assert [(p["name"], p["server"]) for p in every] == [
        ("in-cluster", "https://kubernetes.default.svc"),
        ("prod-1", server),
        ("staging_1", server),
    ]
    assert every[2]["nameNormalized"] == "staging-1"
    assert every[2]["metadata.labels.env"] == "staging"
    assert every[2]["metadata.annotations.owner"] == "team-staging_1"

    gen = {
        "clusters": {
            "selector": {
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "staging"]}
                ]
            },
            "values": {"app": "web-{{metadata.labels.env}}"},
        }
    }
    s = appset([gen], name="{{values.app}}-{{nameNormalized}}")
    selected = await generate(s, ctx)
    assert [p["name"] for p in selected] == [
        "prod-1",
        "staging_1",
    ]  # no in-cluster: it has no labels
    assert [render_application(s, p)["metadata"]["name"] for p in selected] == [
        "web-prod-prod-1",
        "web-staging-staging-1",
    ]

    gold = await generate(
        appset([{"clusters": {"selector": {"matchLabels": {"tier": "gold"}}}}], go=True), ctx
    )
    assert [(p["name"], p["metadata"]["labels"]["tier"]) for p in gold] == [("prod-1", "gold")]


async def test_matrix_of_git_directories_and_clusters(
    kube: KubeClient, kubeconfig: Path, namespace: str, overlays: GitRepo, ctx: GeneratorContext
) -> None:
    await register(kube, kubeconfig, namespace, "east", {"region": "east"})
    await register(kube, kubeconfig, namespace, "west", {"region": "west"})
    gen = {
        "matrix": {
            "generators": [
                dirs_generator(overlays),
                {
                    "clusters": {
                        "selector": {"matchExpressions": [{"key": "region", "operator": "Exists"}]}
                    }
                },
            ]
        }
    }
    s = appset([gen], name="{{path[1]}}-{{path.basename}}-{{name}}")
    out = await generate(s, ctx)
    names = [render_application(s, p)["metadata"]["name"] for p in out]
    assert len(names) == 4 * 2
    assert names[:2] == ["api-dev-east", "api-dev-west"]
    assert set(names) == {
        f"{a}-{e}-{c}"
        for a, e in [("api", "dev"), ("api", "test"), ("guestbook", "dev"), ("guestbook", "prod")]
        for c in ("east", "west")
    }


async def test_the_crd_keeps_an_argo_cd_application_set_intact(
    kube: KubeClient, apps_namespace: str, overlays: GitRepo, ctx: GeneratorContext
) -> None:
    # An Argo CD ApplicationSet with its apiVersion changed: the API server
    # (with gitmoor's CRD, installed by the app_crd fixture through
    # store.install) must keep every generator and template field, or the
    # set would silently generate something else.
    manifest: dict[str, Any] = {
        "apiVersion": "gitmoor.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "guestbook", "namespace": apps_namespace},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [
                {
                    "matrix": {
                        "generators": [
                            dirs_generator(overlays, {"path": "apps/api/*/*", "exclude": True}),
                            {"list": {"elements": [{"tier": "web", "replicas": 2}]}},
                        ]
                    },
                    "selector": {"matchLabels": {"tier": "web"}},
                }
            ],
            "template": {
                "metadata": {"name": "{{ .path.basename }}-{{ .tier }}", "labels": {"a": "b"}},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": overlays.url, "path": "{{ .path.path }}"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": "x"},
                },
            },
            "syncPolicy": {
                "applicationsSync": "create-delete",
                "preserveResourcesOnDeletion": True,
            },
        },
    }
    stored = await kube.apply(manifest, force=True)
    assert stored["spec"] == manifest["spec"]
    s = parse_appset(stored)
    assert (s.policy, s.preserve_resources_on_deletion) == ("create-delete", True)
    apps = [render_application(s, p) for p in await generate(s, ctx)]
    assert [(a["metadata"]["name"], a["spec"]["destination"]) for a in apps] == [
        ("dev-web", {"name": "in-cluster", "namespace": "x"}),
        ("prod-web", {"name": "in-cluster", "namespace": "x"}),
    ]


async def test_git_over_http_uses_the_stored_repository_credentials(
    kube: KubeClient, namespace: str, git_server: GitHTTPServer, ctx: GeneratorContext
) -> None:
    served = GitRepo(git_server.root / "gitops")
    served.commit({"apps/web/overlays/dev/kustomization.yaml": KUSTOMIZATION})
    gen = {
        "git": {"repoURL": git_server.url("gitops"), "directories": [{"path": "apps/*/overlays/*"}]}
    }
    with pytest.raises(GitmoorError):  # no credentials stored yet: the server says 401
        await generate(appset([gen]), ctx)
    await add_repo(kube, git_server.url(""), username=USER, password=PASSWORD, namespace=namespace)
    out = await generate(appset([gen]), ctx)
    assert [p["path"] for p in out] == ["apps/web/overlays/dev"]
