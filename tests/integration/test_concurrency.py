"""Two simultaneous completions of one task: exactly one wins, the other gets ConcurrencyConflict,
nothing is half-written. Real threads, real database connections."""

from __future__ import annotations

import threading
from collections import Counter

from engine.engine import Engine
from engine.errors import ConcurrencyConflict
from engine.ports import AuditQuery
from engine.records import InstanceStatus, TaskQuery, TaskStatus
from tests.bpmn import sequential
from tests.conftest import ADMIN, COORDINATOR

ROUNDS = 12


def test_simultaneous_completions_of_one_task(engine: Engine) -> None:
    engine.deploy(sequential(2), "seq.bpmn", ADMIN)
    instances = [engine.start("seq", COORDINATOR).instance for _ in range(ROUNDS)]
    first_tasks = {}
    with engine.store.transaction() as tx:
        for instance in instances:
            [task] = tx.list_tasks(TaskQuery(instance_id=instance.id, all_tasks=True))
            first_tasks[instance.id] = task.id

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def complete(task_id: str, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            engine.complete(task_id, COORDINATOR, {})
            result = "won"
        except ConcurrencyConflict:
            result = "conflict"
        with lock:
            outcomes[result] += 1

    for instance in instances:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=complete, args=(first_tasks[instance.id], barrier)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads)

    assert outcomes == Counter({"won": ROUNDS, "conflict": ROUNDS})
    with engine.store.transaction() as tx:
        for instance in instances:
            stored = tx.get_instance(instance.id)
            assert stored is not None and stored.version == instance.version + 1
            assert stored.status == InstanceStatus.RUNNING
            tasks = tx.list_tasks(TaskQuery(status=None, instance_id=instance.id, all_tasks=True))
            assert sorted(t.status for t in tasks) == [TaskStatus.COMPLETED, TaskStatus.OPEN]
            assert sum(t.status == TaskStatus.COMPLETED and t.element_id == "t1" for t in tasks) == 1
            audit = tx.list_audit(AuditQuery(instance_id=instance.id, action="task.completed"))
            assert len(audit) == 1


def test_parallel_completions_of_different_instances_all_succeed(engine: Engine) -> None:
    engine.deploy(sequential(1), "seq.bpmn", ADMIN)
    ids = [engine.start("seq", COORDINATOR).instance.id for _ in range(8)]
    with engine.store.transaction() as tx:
        tasks = [tx.list_tasks(TaskQuery(instance_id=i, all_tasks=True))[0].id for i in ids]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(tasks))

    def complete(task_id: str) -> None:
        barrier.wait()
        try:
            engine.complete(task_id, COORDINATOR, {})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=complete, args=(t,)) for t in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with engine.store.transaction() as tx:
        assert all(tx.get_instance(i).status == InstanceStatus.COMPLETED for i in ids)  # type: ignore[union-attr]
