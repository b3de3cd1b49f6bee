"""The job services of a site, wired from named ports: the ledger, the step environment,
the peers, receipts and the result store, each built once and handed to the parts that
use it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from mahiru.config import SiteConfig, SlurmRunnerConfig
from mahiru.model.identifiers import JobId, SiteId
from mahiru.model.items import WorkflowItem
from mahiru.model.live import LiveReader
from mahiru.model.workflow import Job
from mahiru.runtime.docker_engine import DockerRuntime
from mahiru.runtime.limits import limits_from_config
from mahiru.runtime.protocol import ContainerRuntime
from mahiru.runtime.slurm_runner import SlurmRunner, SlurmSettings
from mahiru.services.jobs import (
    JobLedger,
    JobLoops,
    JobPeerFactory,
    JobPeers,
    JobPorts,
    JobServices,
    StepEnvironment,
)
from mahiru.services.jobs.assignment import StepAssignments
from mahiru.services.jobs.coordination import JobCoordinator
from mahiru.services.jobs.dispatch import Dispatcher
from mahiru.services.jobs.egress import Egress
from mahiru.services.jobs.execution import StepExecution
from mahiru.services.jobs.fetching import InputFetcher
from mahiru.services.jobs.images import LoadedImages
from mahiru.services.jobs.live_channel import LiveChannels
from mahiru.services.jobs.live_grants import LiveGrants
from mahiru.services.jobs.readiness import StepReadiness
from mahiru.services.jobs.receipts import Receipts
from mahiru.services.jobs.release_reviews import ReleaseReviews, ReleaseSigning
from mahiru.services.jobs.review_exchange import ReviewerParties, ReviewExchange, ReviewReading
from mahiru.services.jobs.step_container import StepContainer
from mahiru.services.jobs.step_logs import LogRetention
from mahiru.services.jobs.storing import ResultStore
from mahiru.services.jobs.submission import JobSubmissions
from mahiru.services.jobs.worker import StepWorker
from mahiru.services.site import PolicyView, SiteServices
from mahiru.services.site.reviewers import PolicyReviewers
from mahiru.storage.review_outbox import ReviewOutbox
from mahiru.storage.tes_tasks import TaskFieldRepository

if TYPE_CHECKING:
    from mahiru.bootstrap.site import SiteStorage
    from mahiru.clock import Clock


def step_environment(config: SiteConfig, engine: ContainerRuntime) -> StepEnvironment:
    """Where the site's steps run: with the docker runner, on `engine` itself, in the
    site's data folder; with the slurm runner, as batch jobs, in the shared folder."""
    limits = limits_from_config(config.containers)
    chosen = config.runner
    if isinstance(chosen, SlurmRunnerConfig):
        settings = SlurmSettings(
            partition=chosen.partition,
            shared_dir=chosen.shared_dir,
            engine=chosen.engine,
            account=chosen.account,
            slurm_conf=chosen.slurm_conf,
            cancel_wait_seconds=chosen.cancel_wait_seconds,
        )
        return StepEnvironment(engine, SlurmRunner(settings), limits, chosen.shared_dir / "work")
    return StepEnvironment(engine, engine, limits, config.data_dir / "work")


def _review_rules(policy: PolicyView, job: Job, item: WorkflowItem) -> list[str]:
    """The ids of the review rules covering `item`'s result, read without a record."""
    return [rule.rule_id() for rule in policy.reader().reviews_of(job, item)]


def build_jobs(
    config: SiteConfig,
    storage: SiteStorage,
    services: SiteServices,
    runtime: ContainerRuntime | None,
    peer_factory: JobPeerFactory,
    sign: Callable[[bytes], bytes] | None,
    clock: Clock,
) -> JobServices:
    """The job services of the site of `config`, holding the ports they were built from
    (nothing started).

    The job peers are closed by whoever closes the site (`jobs.ports.peers.close`).
    """
    site, repositories = config.site, storage.repositories
    replica, transfers = services.replication.replica, services.oversight.transfers
    ledger = JobLedger(site, repositories.jobs, clock)
    environment = step_environment(config, runtime or DockerRuntime())
    peers = JobPeers(replica, peer_factory)
    receipts = Receipts(
        ledger, replica, storage.blobs, transfers, sign, partial(_review_rules, services.policy)
    )
    results = ResultStore(
        storage.database,
        repositories.assets,
        storage.blobs,
        repositories.results.provenance,
        receipts,
        ledger,
    )
    images = LoadedImages(environment.engine, storage.blobs)
    # Asked by the gate, the step execution and the coordinator: what review holds back.
    reviews = ReleaseReviews(
        site,
        services.policy,
        services.oversight,
        repositories.assets,
        storage.blobs,
        replica,
        None if sign is None else ReleaseSigning(sign, clock),
    )
    ports = JobPorts(ledger, environment, peers, receipts, results, images)
    # Set when the job services stop: waits inside a step's work and retries end early.
    stopping = threading.Event()
    fetcher = InputFetcher(ledger, peers, results, receipts, transfers, images, stopping)
    container = StepContainer(
        site,
        environment,
        fetcher,
        images,
        LiveChannels(site, repositories.assets, peers, environment.work_dir),
        storage.blobs,
    )
    execution = StepExecution(
        ledger,
        StepReadiness(ledger, services.policy, peers, results),
        container,
        results,
        environment,
        stopping,
        reviews,
        storage.database,
        unavailable_deadline=config.peer_retry_deadline_seconds,
    )
    # A finished step may finish its job: the coordinator (made below) looks at once.
    worker = StepWorker(
        ledger, environment, execution, stopping, on_step_done=lambda: coordinator.wake()
    )

    def ask_submitter(submitter: SiteId, job_id: JobId, job_digest: str) -> list[LiveReader]:
        """The unfinished steps of a job submitted at `submitter` reading data stored here."""
        if submitter == site:
            return assignments.readers(job_id, submitter, job_digest)
        return peers.get(submitter).readers(job_id, job_digest)

    live = LiveGrants(
        services.policy,
        replica,
        repositories.assets,
        storage.blobs,
        environment,
        clock,
        ask_submitter,
    )
    # The egress gate: the one way out for images, step statuses and live files.
    egress = Egress(
        services.policy, services.assets, repositories.results.provenance, transfers, live, reviews
    )
    assignments = StepAssignments(
        ledger, services.policy, replica, egress, worker.wake, worker.stop_containers
    )
    dispatcher = Dispatcher(ledger, peers, assignments, stopping)

    def wake() -> None:
        worker.wake()
        coordinator.wake()

    submissions = JobSubmissions(
        ledger,
        services.policy,
        replica,
        peers,
        repositories.assets,
        storage.database,
        egress,
        on_change=wake,
        stop_job=worker.stop_containers,
        task_fields=TaskFieldRepository(storage.database),
    )
    coordinator = JobCoordinator(
        ledger,
        peers,
        results,
        receipts,
        dispatcher,
        submissions,
        reviews,
        retention=LogRetention(ledger, config.step_log_retention_days),
    )
    # Reviews whose reviewer is another party go to its site, and decisions come back.
    queue = services.oversight.reviews
    exchange = ReviewExchange(
        config.owner_party,
        queue,
        ReviewOutbox(storage.database),
        peers,
        replica,
        ReviewReading(egress, services.oversight.review_files),
        # The reviewer a rule names is the site's policy's to resolve, as for the queue.
        ReviewerParties(PolicyReviewers(services.policy).names_of, services.oversight.audit),
        clock,
    )
    queue.use_notifier(exchange.wake)
    return JobServices(
        ports=ports,
        submissions=submissions,
        assignments=assignments,
        egress=egress,
        live=live,
        loops=JobLoops(worker, coordinator, stopping, exchange),
    )
