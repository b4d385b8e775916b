"""trio-graph-scheduler: a graph-based task scheduler for Trio.

Run a graph in this process with :func:`execute_graph`, or across machines with the
``tgs-coordinator`` and ``tgs-worker`` commands.
"""

from .coordinator.config import CoordinatorConfig as CoordinatorConfig
from .coordinator.core.conditions import GenericSchedulingCondition as GenericSchedulingCondition
from .coordinator.core.graph import GraphStatistics as GraphStatistics
from .coordinator.core.graph import TaskGraph as TaskGraph
from .coordinator.core.loops import WorkerLoop as WorkerLoop
from .coordinator.core.nodes import TaskNode as TaskNode
from .coordinator.core.policy import TaskPolicy as TaskPolicy
from .coordinator.inprocess import execute_graph as execute_graph
from .coordinator.server import Coordinator as Coordinator
from .coordinator.server import RunSummary as RunSummary
from .coordinator.server import serve_coordinator as serve_coordinator
from .shared.errors import ConfigError as ConfigError
from .shared.errors import CoordinatorUnreachableError as CoordinatorUnreachableError
from .shared.errors import GraphDefinitionError as GraphDefinitionError
from .shared.errors import GraphStalledError as GraphStalledError
from .shared.errors import LinkError as LinkError
from .shared.errors import LocalProtocolError as LocalProtocolError
from .shared.errors import ProtocolError as ProtocolError
from .shared.errors import RemoteProtocolError as RemoteProtocolError
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
