"""Secrets in Git: the one redaction policy every output goes through (``redact``),
and SOPS files read and written in Python for authors (``sopsfile``).

The decryption at render time runs the real ``sops`` binary; that is render's
(``gitmoor.render.decrypt``). This package imports only ``gitmoor.model``.
"""
