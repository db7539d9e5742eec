"""What a committed run records about how it was made, and whether this study would make the same.

A run folder is reused only when its records agree with the study asking: the run id (the folder's name, the
``run`` of ``result.json`` and of ``config.json``), the model and training configs, the noise level, the data's
content fingerprint and the split. :func:`run_provenance` is what a study records and expects; :func:`mismatches`
names, in words, every way a record differs from it.

Every number a run publishes sits in its ``result.json``; :func:`document_digest` is the SHA-256 of that document's
canonical JSON (every key but ``sha256`` itself), so an edited number is found on reuse like a changed weights file.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter

from .config import StudyConfig
from .remedies import Remedy
from .runspec import Run, RunSpec
from .integrity import array_fingerprint

__all__ = ["document_digest", "expectation", "in_study", "mismatches", "run_provenance", "split_fingerprint"]

DIGEST_KEY = "sha256"


def split_fingerprint(data):
    """Content hash of a data draw's split (train, val and test indices, in order)."""
    return array_fingerprint(data.train, data.val, data.test)


def run_provenance(spec: RunSpec, data, config: StudyConfig):
    """What a run of ``spec`` made by this study on ``data`` records: JSON-ready, compared on reuse."""
    run = Run.of(spec, config, data)
    model, train = run.model, run.train
    return {"model_config": model.to_dict(), "train_config": None if train is None else train.to_dict(),
            "noise_std": config.noise_std, "data_fingerprint": data.fingerprint,
            "split_fingerprint": split_fingerprint(data)}


def in_study(spec: RunSpec, config: StudyConfig, grow_depth=3):
    """Whether ``spec`` is a run this study can make: one of its grid, or one the grow search may reach, or a
    remedy of ``config.remedies`` on one of the grid's architectures."""
    if spec.remedy:
        return (any(Remedy.parse(text).tag == spec.remedy for text in config.remedies)
                and in_study(spec.base, config, grow_depth))
    if spec.model == "pca":
        return spec in config.pca_runs()
    if config.search == "grid":
        return spec in config.runs()
    widths = set(spec.hidden)
    depth = max(config.depths) if max(config.depths) > 1 else grow_depth
    return (spec.kind == config.architecture and spec.bottleneck in config.bottlenecks and spec.seed in config.seeds
            and len(widths) == 1 and min(config.widths) <= spec.hidden[0] <= max(config.widths)
            and 1 <= spec.depth <= depth)


def expectation(config: StudyConfig, data_for, grow_depth=3):
    """``expected(run_id)``: the provenance a run of this study must record, None for an id outside the study.

    ``data_for(spec)`` gives the data draw a run trains on (with ``data_seeds``, its seed's own).
    """
    def expected(run):
        try:
            spec = RunSpec.from_run(run)
        except ValueError:
            return None
        return run_provenance(spec, data_for(spec), config) if in_study(spec, config, grow_depth) else None

    return expected


def _canonical(value):
    return json.loads(json.dumps(value, allow_nan=False)) if value is not None else None


def mismatches(recorded, expected, prefix=""):
    """Every way ``recorded`` (read from a run's files) differs from ``expected`` (:func:`run_provenance`).

    Returns
    -------
    list of str
        Like ``"train_config.epochs: 7 recorded, 5 in this study"``; empty when they agree.
    """
    out = []
    for key in sorted(set(expected) | (set(recorded) if isinstance(recorded, dict) else set())):
        a = recorded.get(key, "<missing>") if isinstance(recorded, dict) else "<missing>"
        b = expected.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += mismatches(a, b, f"{prefix}{key}.")
        elif not _same(a, b):
            out.append(f"{prefix}{key}: {_short(a)} recorded, {_short(b)} in this study")
    return out


def _same(a, b):
    try:  # as JSON: a tuple recorded as a list is the same tuple
        return _canonical(a) == _canonical(b)
    except (TypeError, ValueError):  # a non-finite float, read back from a file written by someone else
        return a == b


def _short(value):
    text = repr(value)
    return text if len(text) <= 24 else text[:12] + "..."


def document_digest(doc):
    """SHA-256 (hex) of ``doc``'s canonical JSON, every key but ``"sha256"`` (where the digest is kept).

    Examples
    --------
    >>> document_digest({"rows": [{"mse": 0.5}]}) == document_digest({"rows": [{"mse": 0.5}], "sha256": "x"})
    True
    """
    body = {k: v for k, v in doc.items() if k != DIGEST_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


_SAID = set()  # (folder, kinds) already warned about in this process


def say_mixed_kernels(folder, records):
    """Warn, once per folder and combination, where a folder's trained runs (:class:`~.store.RunResult`) record
    more than one CPU or kind of float kernels (``autoenc.io.float_kernels``): float32 rounds differently on each."""
    kinds = Counter(rec.kernels for rec in records if rec.train_config is not None and rec.kernels)
    if len(kinds) > 1 and (str(folder), frozenset(kinds)) not in _SAID:
        _SAID.add((str(folder), frozenset(kinds)))
        listed = "; ".join(f"{n} on {kind}" for kind, n in sorted(kinds.items()))
        warnings.warn(f"the runs in {folder} were trained with {len(kinds)} kinds of CPU or float kernels ({listed}): "
                      "float32 rounds differently on each and training carries it on, so a run made on another kind "
                      "differs (by up to about 1% in the README's width-1024 runs)", RuntimeWarning, stacklevel=3)
