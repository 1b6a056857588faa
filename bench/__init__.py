"""Benchmarks of the engine, the gateway, the floor and a peer (results in README.md)."""
