"""Benchmarks of the chat server beside the tutorial's service on grpcio; `python -m bench`."""
