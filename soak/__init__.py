"""The soak suite: many clients chatting, editing, reacting and deleting while servers and Redis
are killed; nothing may be lost or doubled, and every message must end the same everywhere.

`python -m soak` runs it from the command line; tests/e2e/test_soak.py runs a small version.
"""
