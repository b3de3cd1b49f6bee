"""`mahiru plan` and `mahiru policy explain`: offline decisions from YAML files.

The rules are taken as given (no signatures): these commands answer "what
would the system decide" for a set of rules, sites and a job.

See docs/reference.md, "Command line".
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from mahiru.cli.connection import site_client
from mahiru.cli.errors import EXIT_DENIED, detail_lines, handle_errors
from mahiru.errors import InvalidInput, PermissionDenied

# The model, the policy engine and the planner are imported where a command runs, not
# here: `--help` needs none of them.

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
    from mahiru.files import load_job, load_rules, load_sites
    from mahiru.model.serialization import plan_to_dict
    from mahiru.planner import plan_job
    from mahiru.policy.engine import PolicyEngine
    from mahiru.policy.store import RuleStore

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
@click.option("--rules", "rules_path", type=_FILE, help="RULES.yaml (offline), or use --at.")
@click.option("--job", "job_path", type=_FILE, required=True, help="JOB.yaml")
@click.option(
    "--item",
    required=True,
    help="Workflow item: input, step, step.input, step.@output, step.output or output.",
)
@click.option("--site", help="Ask whether this site may access the item.")
@click.option("--party", help="Ask whether this party may use the item.")
@click.option(
    "--at",
    "site_url",
    metavar="URL",
    help="Ask a running site (its internal API) instead of RULES.yaml: with its rules.",
)
@click.option("--cert", type=_FILE, envvar="MAHIRU_CERT", help="With --at: your user certificate.")
@click.option("--key", "tls_key", type=_FILE, envvar="MAHIRU_KEY", help="With --at: its key.")
@click.option("--ca", type=_FILE, envvar="MAHIRU_CA", help="With --at: the network CA.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@handle_errors
def explain_command(
    rules_path: Path | None,
    job_path: Path,
    item: str,
    site: str | None,
    party: str | None,
    site_url: str | None,
    cert: Path | None,
    tls_key: Path | None,
    ca: Path | None,
    as_json: bool,
) -> None:
    """Explain the decision for one workflow item: exit 0 if allowed, 3 if denied.

    With --rules the rules are taken as given (offline); with --at a running
    site decides with the rules it holds (its own and its peers'), as it
    would for a job.

    \b
    Examples:
      mahiru policy explain --rules rules.yaml --job job.yaml --item compute --site SITE
      mahiru --profile alice policy explain --at "$SITE1/internal" --job job.yaml \\
        --item compute.output0 --party party:p1.example.org:p1
    """
    from mahiru.files import load_job, load_rules
    from mahiru.model.identifiers import PartyId, SiteId
    from mahiru.model.items import WorkflowItem
    from mahiru.model.serialization import job_to_dict
    from mahiru.policy.engine import PolicyEngine
    from mahiru.policy.store import RuleStore

    if (site is None) == (party is None):
        raise InvalidInput("give exactly one of --site SITE or --party PARTY")
    source = click.get_current_context().get_parameter_source("site_url")
    if rules_path is not None and source is click.core.ParameterSource.DEFAULT_MAP:
        site_url = None  # a profile's site does not turn an offline question into a remote one
    if (rules_path is None) == (site_url is None):
        raise InvalidInput("give exactly one of --rules RULES.yaml (offline) or --at URL (a site)")
    job = load_job(job_path)
    workflow_item = WorkflowItem.parse(item, job.workflow)
    if site_url is not None:
        missing = [name for name, value in (("--cert", cert), ("--key", tls_key), ("--ca", ca))
                   if value is None]  # fmt: skip
        if missing:
            raise InvalidInput(f"--at needs {', '.join(missing)} (or a --profile)")
        assert cert is not None and tls_key is not None and ca is not None
        with site_client(site_url, cert, tls_key, ca) as client:
            answer = client.explain(job_to_dict(job), item, site=site, party=party)
        allowed = answer.get("allowed") is True
        if as_json:
            click.echo(json.dumps(answer, indent=2))
        else:
            click.echo("\n".join(_decision_lines(answer)))
        if not allowed:
            raise SystemExit(EXIT_DENIED)
        return
    assert rules_path is not None
    engine = PolicyEngine(RuleStore(load_rules(rules_path)))
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


def _decision_lines(node: object, depth: int = 0) -> list[str]:
    """A decision's JSON form as indented lines: each part's and requirement's explanation."""
    if not isinstance(node, dict):
        return []
    lines = []
    explanation = node.get("explanation")
    if isinstance(explanation, str):
        lines.append("  " * depth + explanation)
    for key in ("parts", "requirements"):
        children = node.get(key)
        if isinstance(children, list):
            for child in children:
                lines += _decision_lines(child, depth + 1)
    return lines
