"""Remedies for memorization, as an axis of the study: their names, their run-id tags, what each does to training.

A remedy is one change to how an architecture is trained: ``weight-decay=L`` (Adam's L2 term), ``dropout=P``
(inverted dropout on every hidden activation), ``denoise=S`` (fresh Gaussian noise of std ``S`` on the inputs each
epoch, the targets left as given), ``early-stop`` (the weights of the epoch where the selection criterion on the
validation split is lowest) and ``dp=Z`` (DP-SGD: per-sample gradients clipped to ``dp_clip``, Gaussian noise of
``Z`` times that, Poisson-sampled batches). A remedy run is a run like any other, with its own run id: the
architecture's id with the remedy's tag before the seed, ``ae-k32-h1024-wd0.0001-s0``.

This module only names and parses; nothing here imports the rest of the study.
"""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass

__all__ = ["REMEDIES", "Remedy", "parse_remedies"]

# name -> (run-id tag, whether it takes values, the value's words)
REMEDIES = {
    "weight-decay": ("wd", True, "weight decay"),
    "dropout": ("do", True, "dropout"),
    "denoise": ("dn", True, "denoising training, input noise std"),
    "early-stop": ("es", False, "early stopping at the criterion's minimum"),
    "dp": ("dp", True, "DP-SGD, noise multiplier"),
}
_BY_TAG = {tag: name for name, (tag, _, _) in REMEDIES.items()}
TAG_PATTERN = r"(?:wd|do|dn|dp)\d+(?:\.\d+)?(?:e[+-]?\d+)?|es"


@dataclass(frozen=True, order=True)
class Remedy:
    """One remedy at one value.

    Examples
    --------
    >>> Remedy.parse("weight-decay=1e-4").tag, Remedy.parse("early-stop").tag, Remedy("dp", 4.0).text
    ('wd0.0001', 'es', 'dp=4')
    >>> Remedy.from_tag("do0.1") == Remedy("dropout", 0.1)
    True
    """

    name: str
    value: float | None = None

    def __post_init__(self):
        if self.name not in REMEDIES:
            raise ValueError(f"unknown remedy {self.name!r}; valid remedies are {list(REMEDIES)}")
        takes = REMEDIES[self.name][1]
        if not takes:
            if self.value is not None:
                raise ValueError(f"remedy {self.name!r} takes no value, got {self.value!r}")
            return
        if not isinstance(self.value, numbers.Real) or isinstance(self.value, bool) or not math.isfinite(self.value):
            raise ValueError(f"remedy {self.name!r} needs a finite number, got {self.value!r}")
        value = float(self.value)
        if value <= 0 or (self.name == "dropout" and value >= 1):
            limits = "in (0, 1)" if self.name == "dropout" else "> 0"
            raise ValueError(f"remedy {self.name!r} needs a value {limits}, got {value!r}")
        object.__setattr__(self, "value", value)

    @classmethod
    def parse(cls, text):
        """``"weight-decay=1e-4"`` or ``"early-stop"``."""
        name, _, value = str(text).strip().partition("=")
        name = name.strip().replace("_", "-")
        if name not in REMEDIES:
            raise ValueError(f"unknown remedy {name!r} in {text!r}; valid remedies are {list(REMEDIES)}")
        if REMEDIES[name][1] and not value:
            raise ValueError(f"remedy {name!r} needs a value, like {name}=0.1")
        try:
            return cls(name, float(value) if value else None)
        except ValueError as exc:
            if "needs" in str(exc) or "takes" in str(exc):
                raise
            raise ValueError(f"remedy {name!r} needs a number, got {value!r}") from None

    @classmethod
    def from_tag(cls, tag):
        """Inverse of :attr:`tag`."""
        match = re.fullmatch(r"(?P<tag>[a-z]{2})(?P<value>.*)", str(tag))
        if match is None or match["tag"] not in _BY_TAG:
            raise ValueError(f"{tag!r} is not a remedy tag (like 'wd0.0001', 'do0.1', 'dn0.1', 'es', 'dp1')")
        return cls(_BY_TAG[match["tag"]], float(match["value"]) if match["value"] else None)

    @property
    def tag(self):
        """The remedy in a run id: ``wd0.0001``, ``do0.1``, ``dn0.3``, ``es``, ``dp4``."""
        return REMEDIES[self.name][0] + ("" if self.value is None else f"{self.value:g}")

    @property
    def text(self):
        """The remedy as the command line and the config write it: ``weight-decay=0.0001``."""
        return self.name + ("" if self.value is None else f"={self.value:g}")

    @property
    def words(self):
        """In prose: ``"weight decay 0.0001"``, ``"early stopping at the criterion's minimum"``."""
        return REMEDIES[self.name][2] + ("" if self.value is None else f" {self.value:g}")

    def train_config(self, train, dp_clip=1.0):
        """``train`` with this remedy applied (a ``TrainConfig``)."""
        if self.name == "weight-decay":
            return train.replace(weight_decay=self.value)
        if self.name == "dropout":
            return train.replace(dropout=self.value)
        if self.name == "denoise":
            return train.replace(input_noise=self.value)
        if self.name == "early-stop":
            return train.replace(restore_best=True)
        return train.replace(dp_clip=float(dp_clip), dp_noise=self.value)


def parse_remedies(spec):
    """Remedies from the command line's words, a list of texts or a config table, in a fixed order.

    ``"weight-decay=1e-4,1e-3 dropout=0.1 early-stop"``, ``["dp=1", "dp=4"]`` and
    ``{"weight-decay": [1e-4, 1e-3], "early-stop": True}`` are all accepted. Returns a tuple of :class:`Remedy`,
    without duplicates.

    Examples
    --------
    >>> [r.text for r in parse_remedies("weight-decay=1e-4,1e-3 early-stop dp=1")]
    ['weight-decay=0.0001', 'weight-decay=0.001', 'early-stop', 'dp=1']
    >>> [r.tag for r in parse_remedies({"dropout": [0.1, 0.3], "early-stop": True})]
    ['do0.1', 'do0.3', 'es']
    """
    if spec is None:
        return ()
    if isinstance(spec, dict):
        words = []
        for name, values in spec.items():
            if values is True:
                words.append(str(name))
            elif values is False or values is None:
                continue
            else:
                values = values if isinstance(values, (list, tuple)) else [values]
                words += [f"{name}={v}" for v in values]
    elif isinstance(spec, str):
        words = spec.split()
    else:
        try:
            words = [w for item in spec for w in (str(item).split() if not isinstance(item, Remedy) else [item.text])]
        except TypeError:
            raise TypeError(f"remedies must be text, a list of texts or a table, got {spec!r}") from None
    out = []
    for word in words:
        name, eq, values = word.partition("=")
        for value in (values.split(",") if eq else [None]):
            remedy = Remedy.parse(name if value is None else f"{name}={value}")
            if remedy not in out:
                out.append(remedy)
    return tuple(out)
