"""Methods: one module per method, registered here explicitly (no registration by import side effect).

Example:
    >>> from chronoclip.methods import get_method, list_methods
    >>> "frame-probe" in list_methods()
    True
"""

from __future__ import annotations

from chronoclip.errors import ConfigError
from chronoclip.methods.base import Method
from chronoclip.methods.baselines import FineTune, FrameProbe
from chronoclip.methods.clip import ClipPretrain
from chronoclip.methods.cliptime import CLIPTime
from chronoclip.methods.crisscross import CrissCross
from chronoclip.methods.crisscross_finetune import CrissCrossFinetune
from chronoclip.methods.dist import DiST
from chronoclip.methods.trust import Trust

#: Method name -> class. Add a method by importing it above and listing it here.
METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (ClipPretrain, FrameProbe, FineTune, DiST, CrissCross,
                                                              CrissCrossFinetune, CLIPTime, Trust)}


def list_methods() -> list[str]:
    """Names of the registered methods."""
    return sorted(METHODS)


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}'; choose one of: {', '.join(list_methods())}")
    return METHODS[name]
