"""Who is calling: local accounts, API tokens, web sessions, login limits, OIDC."""
