"""The soak suite: many clients chatting while servers and Redis are killed; nothing may be lost.

`python -m soak` runs it from the command line; tests/e2e/test_soak.py runs a small version.
"""
