"""Engine tests use the apps fixtures of ``tests/integration/conftest.py``: the
Application CRD once per session, and per test a git repository, an apps namespace
next to the test's namespace and an Engine."""
