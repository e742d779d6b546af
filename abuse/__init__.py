"""`python -m abuse`: attacks on a real server process, each watched by an observer, a
delivery watcher, RSS samples and an ACK ledger; the server passes when one attacking client
cannot starve it, exhaust its memory, or lose what it acknowledged."""
