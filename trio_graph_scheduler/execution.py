"""The seed's import path: ``from trio_graph_scheduler.execution import execute_graph``."""

from .coordinator.inprocess import execute_graph as execute_graph

__all__ = ["execute_graph"]
