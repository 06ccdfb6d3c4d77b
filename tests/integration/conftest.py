"""Integration tests use the process fixtures of ``tests/conftest.py``."""
