"""Exceptions raised by alal.

Every error that alal raises on purpose derives from :class:`AlalError`. Plain bad input is also a
:class:`ValueError`, so code written for ASE or NumPy keeps catching it.
"""

from __future__ import annotations

__all__ = [
    "AlalError",
    "InvalidInputError",
    "NumericalError",
    "InternalError",
    "PluginError",
    "ModelFileError",
    "LabelError",
    "UnphysicalStructureError",
    "OracleError",
    "OracleSetupError",
    "CalculationError",
]


class AlalError(Exception):
    """Root of every exception raised by alal."""


class InvalidInputError(AlalError, ValueError):
    """The input cannot be used: wrong shape or dtype, NaN/inf, singular cell, bad cutoff..."""


class NumericalError(AlalError, ArithmeticError):
    """The input was valid but the computation could not produce a finite result."""


class InternalError(AlalError, RuntimeError):
    """A broken invariant inside alal (a bug): please report it with the input that caused it."""


class PluginError(AlalError, LookupError):
    """A plugin is not installed, is ambiguous or failed to import."""


class ModelFileError(AlalError, ValueError):
    """A model file is missing, corrupt, truncated, of an unknown format or version."""


class LabelError(InvalidInputError):
    """A structure given for training or evaluation lacks a label (energy, forces) or has a
    non-finite one."""


class UnphysicalStructureError(InvalidInputError):
    """A structure refused before it reaches an oracle or a model: atoms closer than the minimum
    distance, non-finite coordinates, a periodic cell without volume."""


class OracleError(AlalError):
    """Root of oracle failures."""


class OracleSetupError(OracleError):
    """The oracle is misconfigured (missing code, pseudopotentials, bad settings): no structure can
    be labelled, so an active-learning run stops at once."""


class CalculationError(OracleError):
    """One calculation failed (SCF not converged, a crash on this structure): the run records the
    failure for this structure, may retry it with a safer recipe, and goes on."""
