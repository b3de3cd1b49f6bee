"""`mahiru plan` and `mahiru policy explain`: offline decisions from YAML files.

The rules are taken as given (no signatures): these commands answer "what
would the system decide" for a set of rules, sites and a job.

See docs/reference.md, "Command line".
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from mahiru.cli.errors import EXIT_DENIED, detail_lines, handle_errors
from mahiru.cli.files import load_job, load_rules, load_sites
from mahiru.errors import InvalidInput, PermissionDenied
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.items import WorkflowItem
from mahiru.model.serialization import plan_to_dict
from mahiru.planner import plan_job
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.store import RuleStore

_FILE = click.Path(path_type=Path, dir_okay=False)


@click.command("plan")
@click.option("--rules", "rules_path", type=_FILE, required=True, help="RULES.yaml")
@click.option("--sites", "sites_path", type=_FILE, required=True, help="SITES.yaml")
@click.option("--job", "job_path", type=_FILE, required=True, help="JOB.yaml")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@handle_errors
def plan_command(rules_path: Path, sites_path: Path, job_path: Path, as_json: bool) -> None:
    """Plan a job offline: which site runs each step.

    Exit 0 with the plan, 3 when policy permits no plan (with the reasons),
    2 for invalid files.
    """
    rules = load_rules(rules_path)
    sites, sizes = load_sites(sites_path)
    job = load_job(job_path)
    engine = PolicyEngine(RuleStore(rules))
    try:
        plan = plan_job(job, sites, engine, sizes)
    except PermissionDenied as denial:
        if as_json:
            click.echo(json.dumps(denial.to_dict(), indent=2))
        else:
            click.echo(f"denied: {denial.message}", err=True)
            for line in detail_lines(denial.details):
                click.echo(f"  {line}", err=True)
        raise SystemExit(EXIT_DENIED) from None
    if as_json:
        click.echo(json.dumps({"plan": plan_to_dict(plan)}, indent=2))
        return
    width = max(len(step) for step in plan.assignments)
    click.echo(f"Plan for the job of {job.submitter}:")
    for step in job.workflow.topological_order():
        click.echo(f"  {step.ljust(width)}  ->  {plan[step]}")


@click.group("policy")
def policy_group() -> None:
    """Ask the policy engine about rules, offline."""


@policy_group.command("explain")
@click.option("--rules", "rules_path", type=_FILE, required=True, help="RULES.yaml")
@click.option("--job", "job_path", type=_FILE, required=True, help="JOB.yaml")
@click.option(
    "--item",
    required=True,
    help="Workflow item: input, step, step.input, step.@output, step.output or output.",
)
@click.option("--site", help="Ask whether this site may access the item.")
@click.option("--party", help="Ask whether this party may use the item.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@handle_errors
def explain_command(
    rules_path: Path,
    job_path: Path,
    item: str,
    site: str | None,
    party: str | None,
    as_json: bool,
) -> None:
    """Explain the decision for one workflow item: exit 0 if allowed, 3 if denied."""
    if (site is None) == (party is None):
        raise InvalidInput("give exactly one of --site SITE or --party PARTY")
    rules = load_rules(rules_path)
    job = load_job(job_path)
    workflow_item = WorkflowItem.parse(item, job.workflow)
    engine = PolicyEngine(RuleStore(rules))
    if site is not None:
        decision = engine.explain_item(job, workflow_item, site=SiteId.parse(site))
    else:
        decision = engine.explain_item(job, workflow_item, party=PartyId.parse(party or ""))
    if as_json:
        click.echo(json.dumps(decision.to_dict(), indent=2))
    else:
        click.echo(decision.explain())
    if not decision.allowed:
        raise SystemExit(EXIT_DENIED)
