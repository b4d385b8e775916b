"""The public surface: what `trio_graph_scheduler` exports, and the seed's import paths."""

from __future__ import annotations

import trio_graph_scheduler as tgs
from trio_graph_scheduler import execution, graph, scheduling


def test_public_names() -> None:
    # dir(), not vars(): the package imports its names when first used.
    public = {name for name in dir(tgs) if not name.startswith("_")}
    expected = {
        "TaskGraph", "TaskNode", "WorkerLoop", "GenericSchedulingCondition", "execute_graph",
        "GraphStatistics", "TaskStatus", "ConditionStatus", "TGSError", "GraphDefinitionError",
        "UnknownFunctionError", "UnknownUidError", "GraphStalledError", "WorkerContextError",
        "ProtocolError", "LocalProtocolError", "RemoteProtocolError", "ConfigError",
        "LinkError", "CoordinatorUnreachableError", "WorkerRejectedError", "NotOnWorkerError",
        "Coordinator", "CoordinatorConfig", "RunSummary", "serve_coordinator",
        "Worker", "WorkerConfig", "run_worker", "TaskPolicy", "JournalError",
        "FailedTask", "RemoteTaskError", "TasksFailedError", "ResultReleasedError",
    }  # fmt: skip
    # Sub-packages appear as attributes once imported; they are namespaces, not API names.
    assert public - {"coordinator", "shared", "worker", "protocol", "graph", "execution",
                     "scheduling", "testing"} == expected  # fmt: skip


def test_seed_import_paths_are_the_same_objects() -> None:
    assert graph.TaskGraph is tgs.TaskGraph
    assert graph.TaskGraph.WorkerLoop is tgs.WorkerLoop
    assert execution.execute_graph is tgs.execute_graph
    assert scheduling.GenericSchedulingCondition is tgs.GenericSchedulingCondition


def test_every_error_has_one_root() -> None:
    exported = [getattr(tgs, name) for name in tgs.__all__]
    errors = [v for v in exported if isinstance(v, type) and issubclass(v, Exception)]
    assert all(issubclass(error, tgs.TGSError) for error in errors)
    assert issubclass(tgs.UnknownFunctionError, ValueError)
    assert issubclass(tgs.UnknownUidError, KeyError)
