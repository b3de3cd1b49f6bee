"""Whether a step of this site may run, and may run now: this site's own policy decision,
results to reuse, and the states of the steps it reads from."""

from __future__ import annotations

import threading
from collections import OrderedDict

from mahiru.errors import NotFound
from mahiru.model.jobs import StepStatus, step_results
from mahiru.policy.decisions import Decision
from mahiru.policy.engine import PolicyEngine
from mahiru.services.jobs.ledger import JobLedger, KnownJob
from mahiru.services.jobs.peers import JobPeers
from mahiru.services.jobs.storing import ResultStore
from mahiru.services.jobs.waits import waiting_on
from mahiru.services.site.policy_view import Concerning, PolicyView

#: How many jobs' checks are kept (the jobs with steps here at the same time, at least).
MAX_JOB_CHECKS = 256


class Blocked(Exception):
    """A step this one needs failed or was cancelled: this one cannot run."""


class StepReadiness:
    """Answers, for a step of this site: may it run here, is it done already, can it start."""

    def __init__(
        self, ledger: JobLedger, policy: PolicyView, peers: JobPeers, results: ResultStore
    ) -> None:
        self._ledger = ledger
        self._policy = policy
        self._peers = peers
        self._results = results
        # The last check of each recent job as a whole, with the engine (the rules) and the
        # job and plan it was made on: every step of a job here needs the same check.
        self._checks: OrderedDict[str, tuple[PolicyEngine, KnownJob, Decision]] = OrderedDict()
        self._checks_lock = threading.Lock()

    def decision(self, known: KnownJob, step: str) -> Decision:
        """This site's own decision on running `step`, taken once per set of rules in force.

        Taken at the step's first look (so before it leaves WAITING) and
        again only after the rules changed: a step that waits an hour for its
        inputs is decided, and audited, once. A denial is never remembered;
        it is re-checked after replicating, since the submitter planned with
        its replica and ours may lag behind it by a replication round.
        """
        site = self._ledger.site

        def evaluate(engine: PolicyEngine) -> Decision:
            # The job as a whole as planned: every step at its site (this step here)
            # and outputs the submitter may use; a site never runs a step of a job
            # its policy refuses.
            if known.plan.assignments.get(step) != site:
                return engine.may_run_step(engine.job_permissions(known.job), step, site)
            return self._check_job(engine, known)

        about = Concerning(
            "run step",
            str(known.submitter_site),
            party=str(known.job.submitter),
            job=known.job_id,
            step=step,
        )
        return self._policy.decide_once(evaluate, about, basis=known)

    def _check_job(self, engine: PolicyEngine, known: KnownJob) -> Decision:
        """`engine`'s check of the job as planned; the same engine (the same rules) gives
        the same answer for the same job and plan, so the steps of a job share it instead
        of each evaluating the whole job again."""
        with self._checks_lock:
            cached = self._checks.get(known.job_id)
        if cached is not None and cached[0] is engine and cached[1] == known:
            return cached[2]
        permissions = engine.job_permissions(known.job)
        decision = engine.check_job(permissions, known.plan.assignments, known.submitter_site)
        with self._checks_lock:
            self._checks[known.job_id] = (engine, known, decision)
            self._checks.move_to_end(known.job_id)
            while len(self._checks) > MAX_JOB_CHECKS:
                self._checks.popitem(last=False)
        return decision

    def settled(self, job_id: str, step: str) -> None:
        """The step is done here: its run decision need not be remembered any more."""
        self._policy.forget(job=job_id, step=step)

    def reusable(self, known: KnownJob, step: str) -> bool:
        """Whether every result of the step is stored here already, sound, to be reused."""
        results = step_results(known.job, step)
        return bool(results) and all(self._results.stored(r) for r in results.values())

    def producers_done(self, known: KnownJob, step: str) -> bool:
        """Whether every step this one reads from is done; Blocked if one never will be."""
        ledger = self._ledger
        remote: dict[str, dict[str, StepStatus]] = {}
        for producer in sorted(known.job.workflow.predecessors(step)):
            site = known.plan.assignments[producer]
            if site == ledger.site:
                producer_status = ledger.job_records.step_status(known.job_id, producer)
            else:
                key = str(site)
                if key not in remote:
                    try:
                        with waiting_on(f"cannot ask {site} how step {producer} is", site):
                            statuses = self._peers.get(site).step_statuses(known.job_id)
                    except NotFound:
                        return False  # the steps are not handed over there yet
                    remote[key] = {s.step: s for s in statuses}
                found = remote[key].get(producer)
                if found is None:
                    return False  # not handed over there yet
                producer_status = found
            if producer_status.state.done:
                continue
            if producer_status.state.terminal:
                raise Blocked(f"step {producer} {producer_status.state.value}")
            return False
        return True
