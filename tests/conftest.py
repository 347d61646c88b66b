"""Shared test settings: every test session gets its own empty feature cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_feature_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    import os

    os.environ["CHRONOCLIP_CACHE"] = str(Path(tmp_path_factory.mktemp("feature-cache")))
