"""trio-graph-scheduler: a graph-based task scheduler for Trio.

Run a graph in this process with :func:`execute_graph`, or across machines with the
``tgs-coordinator`` and ``tgs-worker`` commands.

The names below are imported when first used, not when the package is: importing a part
that needs no trio (``trio_graph_scheduler.protocol``, say) loads no trio, and a worker
process never loads the coordinator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .coordinator.config import CoordinatorConfig as CoordinatorConfig
    from .coordinator.core.conditions import (
        GenericSchedulingCondition as GenericSchedulingCondition,
    )
    from .coordinator.core.graph import GraphStatistics as GraphStatistics
    from .coordinator.core.loops import WorkerLoop as WorkerLoop
    from .coordinator.core.nodes import TaskNode as TaskNode
    from .coordinator.core.policy import TaskPolicy as TaskPolicy
    from .coordinator.inprocess import execute_graph as execute_graph
    from .coordinator.run import FailedTask as FailedTask
    from .coordinator.run import RunSummary as RunSummary
    from .coordinator.server import Coordinator as Coordinator
    from .coordinator.server import serve_coordinator as serve_coordinator
    from .coordinator.task_graph import TaskGraph as TaskGraph
    from .shared.errors import ConfigError as ConfigError
    from .shared.errors import CoordinatorUnreachableError as CoordinatorUnreachableError
    from .shared.errors import GraphDefinitionError as GraphDefinitionError
    from .shared.errors import GraphStalledError as GraphStalledError
    from .shared.errors import JournalError as JournalError
    from .shared.errors import LinkError as LinkError
    from .shared.errors import LocalProtocolError as LocalProtocolError
    from .shared.errors import NotOnWorkerError as NotOnWorkerError
    from .shared.errors import ProtocolError as ProtocolError
    from .shared.errors import RemoteProtocolError as RemoteProtocolError
    from .shared.errors import RemoteTaskError as RemoteTaskError
    from .shared.errors import ResultReleasedError as ResultReleasedError
    from .shared.errors import TasksFailedError as TasksFailedError
    from .shared.errors import TGSError as TGSError
    from .shared.errors import UnknownFunctionError as UnknownFunctionError
    from .shared.errors import UnknownUidError as UnknownUidError
    from .shared.errors import WorkerContextError as WorkerContextError
    from .shared.errors import WorkerRejectedError as WorkerRejectedError
    from .shared.states import ConditionStatus as ConditionStatus
    from .shared.states import TaskStatus as TaskStatus
    from .worker.config import WorkerConfig as WorkerConfig
    from .worker.runner import Worker as Worker
    from .worker.runner import run_worker as run_worker

__version__ = "0.1.0"

#: Every public name, and the module that defines it.
_EXPORTS: dict[str, str] = {
    "CoordinatorConfig": ".coordinator.config",
    "GenericSchedulingCondition": ".coordinator.core.conditions",
    "GraphStatistics": ".coordinator.core.graph",
    "WorkerLoop": ".coordinator.core.loops",
    "TaskNode": ".coordinator.core.nodes",
    "TaskPolicy": ".coordinator.core.policy",
    "execute_graph": ".coordinator.inprocess",
    "Coordinator": ".coordinator.server",
    "FailedTask": ".coordinator.run",
    "RunSummary": ".coordinator.run",
    "serve_coordinator": ".coordinator.server",
    "TaskGraph": ".coordinator.task_graph",
    "ConfigError": ".shared.errors",
    "CoordinatorUnreachableError": ".shared.errors",
    "GraphDefinitionError": ".shared.errors",
    "GraphStalledError": ".shared.errors",
    "JournalError": ".shared.errors",
    "LinkError": ".shared.errors",
    "LocalProtocolError": ".shared.errors",
    "NotOnWorkerError": ".shared.errors",
    "ProtocolError": ".shared.errors",
    "RemoteProtocolError": ".shared.errors",
    "RemoteTaskError": ".shared.errors",
    "ResultReleasedError": ".shared.errors",
    "TasksFailedError": ".shared.errors",
    "TGSError": ".shared.errors",
    "UnknownFunctionError": ".shared.errors",
    "UnknownUidError": ".shared.errors",
    "WorkerContextError": ".shared.errors",
    "WorkerRejectedError": ".shared.errors",
    "ConditionStatus": ".shared.states",
    "TaskStatus": ".shared.states",
    "WorkerConfig": ".worker.config",
    "Worker": ".worker.runner",
    "run_worker": ".worker.runner",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(["__version__", *__all__])
