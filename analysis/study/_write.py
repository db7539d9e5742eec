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


def _plain(value):
    """``value`` as ``_strict(json.loads(json.dumps(value, default=_json_default)))`` gives it, in one pass over it
    (a run's result holds thousands of per-sample numbers): plain Python containers and numbers, NaN and infinities
    null. A dict key that is not a string raises ``_Unusual`` (JSON would turn it into one)."""
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise _Unusual
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(type(v) is float for v in value):  # a column of per-sample numbers: no call per number
            isfinite = math.isfinite
            return [v if isfinite(v) else None for v in value]
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return _plain(_json_default(value))
    if type(value) is float:
        return value if math.isfinite(value) else None
    if value is None or type(value) in (str, int, bool):
        return value
    raise _Unusual  # a float or int subclass, or anything else: as json would write it, through json


class _Unusual(Exception):
    pass


def write_json(path, obj, *, digest=False):
    """Strict JSON, atomically; ``digest=True`` adds ``"sha256"``: :func:`~analysis.provenance.document_digest` of
    the document as written, so a number edited later is found."""
    try:
        doc = _plain(obj)
    except _Unusual:
        doc = _strict(json.loads(json.dumps(obj, default=_json_default)))
    if digest:
        doc[DIGEST_KEY] = document_digest(doc)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(_text(doc), encoding="utf-8"))


def _text(doc):
    """``doc`` as JSON text, a top-level key a line, each value compact: json's C encoder writes every value (its
    indented output goes through its pure-Python encoder instead, most of the time a run's commit took for the
    thousands of per-sample numbers it holds)."""
    if not isinstance(doc, dict) or not doc:
        return json.dumps(doc, allow_nan=False)
    lines = (f" {json.dumps(key)}: {json.dumps(value, allow_nan=False)}" for key, value in doc.items())
    return "{\n" + ",\n".join(lines) + "\n}"


def write_npz(path, **arrays):
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)


def write_csv(path, frame):
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
