"""Package namespaces whose public names load on first use (PEP 562).

A study's worker imports only the modules its tasks run: an ``__init__`` that imported every module of its package
would bring scikit-learn, scipy and the rest into each worker (seconds of CPU, paid at the study's start).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

__all__ = ["lazy_exports"]


def lazy_exports(package, modules):
    """``__getattr__`` and ``__dir__`` for ``package``, whose public names live in submodules.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    modules : dict of str to sequence of str
        Module (relative, like ``".model"``) -> the names ``package`` re-exports from it. A name is imported the
        first time it is asked for and then kept in the package's namespace.

    Returns
    -------
    (__getattr__, __dir__)
        Assign both in the package's ``__init__``. Any other submodule also loads when read as an attribute, as
        after an ``__init__`` that imported it; ``dir(package)`` lists every re-exported name, loaded or not.

    Examples
    --------
    >>> getattr_, dir_ = lazy_exports("json", {".decoder": ("JSONDecodeError",)})
    >>> getattr_("JSONDecodeError").__name__, "JSONDecodeError" in dir_()
    ('JSONDecodeError', True)
    """
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name):
        module = where.get(name)
        if module is None:
            if name.startswith("__") or importlib.util.find_spec(f"{package}.{name}") is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            return importlib.import_module(f"{package}.{name}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
