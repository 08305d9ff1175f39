"""``promed_agents.runs``: each stage of the data path as one recorded run.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation
(each stage, run against the store and recorded there)

A run function reads what it needs from a :class:`~promed_agents.storage.TraceStore`,
runs the stage, records it as an experiment (``running`` until it ends, then
``complete``, ``incomplete``, ``failed`` or ``interrupted``), resumes where a stage can,
and returns its result. It prints nothing: notes, warnings and progress go to a
:class:`RunReporter` (by default the ``promed_agents`` logger). Each takes the config its
``promed`` command is generated from, so the command, a script and a benchmark run the
same thing:

- :func:`run_consult` (``promed consult``, :class:`ConsultCommandConfig`);
- :func:`run_shapley` (``promed shapley``, :class:`ShapleyCommandConfig`);
- :func:`run_search` (``promed mcts``, :class:`MCTSCommandConfig`);
- :func:`run_sft` (``promed train sft``, :class:`SFTCommandConfig`);
- :func:`run_grpo` (``promed train grpo``, :class:`GRPOCommandConfig`);
- :func:`run_evaluation` (``promed eval``, :class:`EvalCommandConfig`);
- :func:`run_import` (``promed traces import``, :class:`ImportCommandConfig`);
- :func:`run_demo` (``promed demo``'s stages in order, :class:`DemoConfig`).

For one stage without a store, call the trainers directly (``examples/pipeline.py``).
"""

from promed_agents.runs.consult_run import ConsultCommandConfig, ConsultResult, run_consult
from promed_agents.runs.demo_run import DemoConfig, DemoResult, run_demo
from promed_agents.runs.evaluation_run import EvalCommandConfig, RunFigures, run_evaluation
from promed_agents.runs.grpo_run import GRPOCommandConfig, run_grpo
from promed_agents.runs.import_run import ImportCommandConfig, ImportResult, run_import
from promed_agents.runs.run_reporter import LoggingReporter, RunReporter, TaskProgress
from promed_agents.runs.search_run import MCTSCommandConfig, run_search
from promed_agents.runs.sft_run import SFTCommandConfig, run_sft
from promed_agents.runs.shapley_run import ShapleyCommandConfig, run_shapley

__all__ = ["ConsultCommandConfig", "ConsultResult", "DemoConfig", "DemoResult",
           "EvalCommandConfig", "GRPOCommandConfig", "ImportCommandConfig", "ImportResult",
           "LoggingReporter", "MCTSCommandConfig", "RunFigures", "RunReporter",
           "SFTCommandConfig", "ShapleyCommandConfig", "TaskProgress", "run_consult", "run_demo",
           "run_evaluation", "run_grpo", "run_import", "run_search", "run_sft", "run_shapley"]
