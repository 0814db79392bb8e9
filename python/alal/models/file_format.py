"""Model files without pickle: tensors in safetensors, metadata as JSON in its header.

A file holds named float arrays and one JSON document under the header key ``"alal"``:
``{"format": "alal-model", "format_version": 1, "model": <plugin name>, ...}``. Writes go to a
temporary name and are renamed into place, so a crash never leaves a half-written model.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from alal.errors import ModelFileError

__all__ = ["FORMAT", "FORMAT_VERSION", "read_header", "read_model_file", "write_model_file"]

FORMAT = "alal-model"
FORMAT_VERSION = 1


def write_model_file(path: str | os.PathLike[str], tensors: dict[str, NDArray[Any]],
                     header: dict[str, Any]) -> Path:
    """Write ``tensors`` and the JSON-serialisable ``header`` to ``path`` atomically."""
    from safetensors.numpy import save

    path = Path(path)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **header}
    blob = save({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                metadata={"alal": json.dumps(meta, sort_keys=True)})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _check_header(path: Path, raw: dict[str, str] | None) -> dict[str, Any]:
    if not raw or "alal" not in raw:
        raise ModelFileError(f"{path}: not an alal model file (no 'alal' metadata)")
    try:
        header = json.loads(raw["alal"])
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: the metadata is not valid JSON ({err})") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an alal model file (format {header.get('format')!r})")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model file format version {version!r} is not supported by this alal "
            f"(it reads version {FORMAT_VERSION})")
    return header


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated JSON metadata of a model file."""
    return read_model_file(path, header_only=True)[1]


def read_model_file(path: str | os.PathLike[str], *, header_only: bool = False
                    ) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """``(tensors, header)`` of a model file; any unreadable, truncated or foreign file raises
    :class:`~alal.errors.ModelFileError` with the file name and the reason."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            header = _check_header(path, f.metadata())
            tensors = {} if header_only else {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as err:
        raise ModelFileError(f"{path}: corrupt or truncated model file ({err})") from err
    except (OSError, ValueError) as err:
        if isinstance(err, ModelFileError):
            raise
        raise ModelFileError(f"{path}: unreadable model file ({err})") from err
    for name, t in tensors.items():
        if t.dtype.kind == "f" and not np.isfinite(t).all():
            raise ModelFileError(f"{path}: tensor {name!r} holds non-finite values")
    return tensors, header
