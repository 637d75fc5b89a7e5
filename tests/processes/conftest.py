"""Process scenarios run on the in-memory store and a virtual clock."""

from __future__ import annotations

import pytest

from engine.engine import Engine


@pytest.fixture
def engine(memory_engine: Engine) -> Engine:
    return memory_engine
