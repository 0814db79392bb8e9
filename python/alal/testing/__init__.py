"""Helpers for tests: reference data sets (:mod:`alal.testing.emt`) and conformance checks that
plugin authors run against their plugins (:mod:`alal.testing.models`)."""
