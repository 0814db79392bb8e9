"""Helpers for tests: reference data sets (:mod:`alal.testing.emt`) and, later, conformance tests
that plugin authors run against their plugins."""
