"""Whether a step of this site may run, and may run now: this site's own policy decision,
results to reuse, and the states of the steps it reads from."""

from __future__ import annotations

from mahiru.errors import NotFound
from mahiru.model.jobs import StepStatus, step_results
from mahiru.policy.decisions import Decision
from mahiru.policy.engine import PolicyEngine
from mahiru.services.jobs.ledger import JobLedger, KnownJob
from mahiru.services.jobs.peers import JobPeers
from mahiru.services.jobs.storing import ResultStore
from mahiru.services.site.policy_view import Concerning, PolicyView


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
            permissions = engine.job_permissions(known.job)
            if known.plan.assignments.get(step) != site:
                return engine.may_run_step(permissions, step, site)
            return engine.check_job(permissions, known.plan.assignments, known.submitter_site)

        about = Concerning(
            "run step",
            str(known.submitter_site),
            party=str(known.job.submitter),
            job=known.job_id,
            step=step,
        )
        return self._policy.decide_once(evaluate, about, basis=known)

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
