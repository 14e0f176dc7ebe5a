"""gitmoor server: the REST API, the web UI, accounts, RBAC and the audit trail.

A driver over the engine, like the CLI and the controller (Argo CD's
argocd-server next to its application-controller): it reads Applications from
one watch cache, asks for operations through ``Engine.request_sync`` and the
other request methods, and lets the controller run them. It keeps no copy of
truth of its own: sessions are the only state it holds in memory.

Layout:

- :mod:`.state`     one process's shared parts (kube client, engine, caches, stores)
- :mod:`.deps`      FastAPI dependencies: who is calling, may they, CSRF
- :mod:`.rbac`      Argo CD's policy.csv model through casbin
- :mod:`.audit`     an Event and a log line for every state-changing call
- :mod:`.auth`      accounts, passwords, API tokens, sessions, login limits, OIDC
- :mod:`.api`       the ``/api/v1`` routers
- :mod:`.ui`        the web UI (Jinja2 templates, htmx), served by the same process
- :mod:`.app`       the FastAPI application; :mod:`.main` runs it under uvicorn
"""
