"""The seed's import path for the graph: ``from trio_graph_scheduler.graph import TaskGraph``."""

from .coordinator.graph import TaskGraph as TaskGraph
from .coordinator.loops import WorkerLoop as WorkerLoop
from .coordinator.nodes import TaskNode as TaskNode

__all__ = ["TaskGraph", "TaskNode", "WorkerLoop"]
