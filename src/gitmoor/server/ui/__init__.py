"""The web UI: server-rendered Jinja2 templates with htmx, served by the API process.

- :mod:`~gitmoor.server.ui.pages`: what every page shares: the templates, the
  session check (``PageSession``: no session, a 303 to ``/login?next=...``) and
  :func:`~gitmoor.server.ui.pages.render`, which gives each template the user,
  the CSRF token and the RBAC question ``can()``.
- :mod:`~gitmoor.server.ui.routes`: login, the application list, the settings
  pages, user info, and ``/static``.
- :mod:`~gitmoor.server.ui.app_page`: the application page.

Templates extend ``templates/base.html`` (blocks ``title``, ``head``,
``content``, ``scripts``) and take shared markup from ``templates/macros.html``.
``static/vendor/`` is written by ``make ui-vendor`` only (README, "The web UI").
"""
