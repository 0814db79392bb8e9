"""The built-in ``ani`` model: per-element committee networks over alal's ANI descriptors."""

from alal.models.ani.model import AniModel

__all__ = ["AniModel"]
