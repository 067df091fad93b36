"""Durable workflows (factors 8 and 10): deterministic Python with plain, agent, human and timer steps.

See ``runner.py`` for an example; ``flow.py`` says how steps are recorded and replayed.
"""

from twelvefactor.workflows.flow import Approval, Flow
from twelvefactor.workflows.runner import Workflow, has_work, run_workflow, wake_at, workflow

__all__ = ["Approval", "Flow", "Workflow", "has_work", "run_workflow", "wake_at", "workflow"]
