"""The study's files written atomically: strict JSON (with an optional checksum of its numbers), npz and CSV."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from autoenc.io import atomic_write

from .provenance import DIGEST_KEY, document_digest

__all__ = ["write_csv", "write_json", "write_npz"]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _strict(value):
    """NaN and infinities become null: the files are strict JSON that any reader accepts."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def write_json(path, obj, *, digest=False):
    """Strict JSON, atomically; ``digest=True`` adds ``"sha256"``: :func:`~analysis.provenance.document_digest` of
    the document as written, so a number edited later is found."""
    doc = _strict(json.loads(json.dumps(obj, default=_json_default)))
    if digest:
        doc[DIGEST_KEY] = document_digest(doc)
    text = json.dumps(doc, indent=1, allow_nan=False)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_npz(path, **arrays):
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)


def write_csv(path, frame):
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
