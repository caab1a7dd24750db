"""Factory end-of-line testing: plans as data, the runner, the results database, reports.

>>> from smartbatt.factory import ResultsDb, load_plan, run_plan
>>> from smartbatt import open_battery
>>> plan = load_plan("examples/eol_drone_4s.toml")
>>> with open_battery("emulated:bq40z50?speed=0") as battery, ResultsDb.open("eol.sqlite") as db:
...     result = run_plan(plan, battery, station="EOL-1", operator="ana", results_db=db)
>>> result.outcome, result.message        # doctest: +SKIP
"""

from smartbatt.factory.plan import Plan, PlanError, load_plan
from smartbatt.factory.results_db import ResultsDb, ResultsDbError
from smartbatt.factory.runner import Outcome, RunResult, StepStatus, run_plan, wait_for_pack, wait_for_removal

__all__ = [
    "Outcome",
    "Plan",
    "PlanError",
    "ResultsDb",
    "ResultsDbError",
    "RunResult",
    "StepStatus",
    "load_plan",
    "run_plan",
    "wait_for_pack",
    "wait_for_removal",
]
