"""Built-in oracles: ``emt`` (ASE's effective-medium theory: fast, for tests and the quick start)."""
