"""Unit tests run the engine on the in-memory store."""

from __future__ import annotations

import pytest

from engine.engine import Engine
from engine.memory import MemoryStore
from engine.ports import Store


@pytest.fixture
def engine(memory_engine: Engine) -> Engine:
    return memory_engine


@pytest.fixture
def store() -> Store:
    return MemoryStore()
