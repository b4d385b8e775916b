"""The seed's import path for the graph: ``from trio_graph_scheduler.graph import TaskGraph``."""

from .coordinator.core.loops import WorkerLoop as WorkerLoop
from .coordinator.core.nodes import TaskNode as TaskNode
from .coordinator.task_graph import TaskGraph as TaskGraph

__all__ = ["TaskGraph", "TaskNode", "WorkerLoop"]
