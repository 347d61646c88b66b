"""Synthetic worlds: generators that write real media files and a manifest (DESIGN §7).

Every world is a scene of one universe (:mod:`chronoclip.data.worlds.universe`). The registry is
explicit; a world's module is imported only when it is used, so the CLI starts fast.

Example:
    >>> from chronoclip.data.worlds import make_world        # doctest: +SKIP
    >>> manifest = make_world("motion", "data/motion", seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from chronoclip.data.worlds.base import World, WorldParams
from chronoclip.errors import ConfigError

#: World name -> module that defines ``WORLD``.
_MODULES: dict[str, str] = {
    "captions": "captions",
    "growth": "growth",
    "motion": "motion",
    "captioned-motion": "captioned_motion",
    "domains": "domains",
    "audiovisual": "audiovisual",
}


def list_worlds() -> list[str]:
    """Names of the registered worlds."""
    return list(_MODULES)


def get_world(name: str) -> World[Any]:
    """The registered world called ``name``."""
    if name not in _MODULES:
        raise ConfigError(f"unknown world '{name}'; choose one of: {', '.join(_MODULES)}")
    module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    world: World[Any] = module.WORLD
    return world


def world_params(name: str, overrides: dict[str, Any] | None = None, dotlist: list[str] | None = None
                 ) -> WorldParams:
    """The world's parameters with overrides (a dict and/or ``key=value`` strings), type-checked.

    Raises:
        ConfigError: an unknown key or a value of the wrong type, naming the key and the world.
    """
    world = get_world(name)
    base = OmegaConf.structured(world.params)
    try:
        merged = OmegaConf.merge(base, OmegaConf.create(overrides or {}), OmegaConf.from_dotlist(dotlist or []))
        params: WorldParams = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except Exception as exc:  # OmegaConf raises several types for bad keys / values
        fields = ", ".join(k for k in base)
        raise ConfigError(f"bad parameter for world '{name}': {exc}. Known parameters: {fields}") from exc
    return params


def make_world(name: str, out: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Generate world ``name`` into folder ``out``; return the manifest path."""
    params = world_params(name, {"seed": seed, **overrides})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return get_world(name).generate(out, params)
