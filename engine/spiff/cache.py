"""Live workflows kept between commands, so that the next command on an instance need not
deserialize what the last one has just serialized.

An entry is the :class:`Runtime` exactly as it was saved, keyed by the instance and the
version that save wrote. A command takes its entry out (:meth:`take`) before touching it and
puts it back (:meth:`keep`) only after its transaction committed, with the version it wrote;
so a failed or conflicting command leaves nothing behind, and any other writer (another
process, another kind of command) bumps the version and turns the entry into a miss. The
database row stays the truth: the cache only saves its deserialization.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .parser import CompiledSpecs
from .runtime import Runtime


class RuntimeCache:
    """A bounded LRU map ``instance id -> (version, runtime)``; safe across threads."""

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self._entries: OrderedDict[str, tuple[int, Runtime]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def take(self, instance_id: str, version: int, specs: CompiledSpecs) -> Runtime | None:
        """The runtime saved as ``version`` of the instance (now owned by the caller), or None."""
        with self._lock:
            entry = self._entries.pop(instance_id, None)
            if entry is not None and entry[0] == version and entry[1].specs is specs:
                self.hits += 1
                return entry[1]
            self.misses += 1
            return None

    def keep(self, instance_id: str, version: int, runtime: Runtime) -> None:
        """Remember ``runtime`` as committed ``version`` of the instance (call after the commit); a
        finished workflow is not kept, no command will take it."""
        if self.size == 0 or runtime.completed:
            return
        with self._lock:
            self._entries[instance_id] = (version, runtime)
            self._entries.move_to_end(instance_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
