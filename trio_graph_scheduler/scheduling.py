"""The seed's import path for conditions.

``from trio_graph_scheduler.scheduling import GenericSchedulingCondition``.
"""

from .coordinator.core.conditions import GenericSchedulingCondition as GenericSchedulingCondition

__all__ = ["GenericSchedulingCondition"]
