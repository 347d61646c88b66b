"""Lazy re-exports for package ``__init__`` files (PEP 562): names load their module on first access.

Keeps ``import chronoclip.io.writers`` (used by data and worlds) from importing torch and transformers
through a package ``__init__``, and ``chronoclip --help`` fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(namespace: dict[str, Any], exports: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose ``exports`` map module -> public names.

    Usage in a package ``__init__``: ``__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)``.
    """
    module_of = {name: module for module, names in exports.items() for name in names}
    public = sorted(module_of)

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *public})

    return __getattr__, __dir__
