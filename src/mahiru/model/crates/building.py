"""Writing a job's crate metadata (JSON-LD) from what the site knows of the job.

The workflow is `workflow.json`, a `ComputationalWorkflow` whose steps are
`HowToStep`s, each with its compute asset as the tool (a `SoftwareApplication`
whose `softwareVersion` is the image digest its receipt signs). The job's run
is a `CreateAction` by the submitting user, orchestrated by Mahiru (an
`OrganizeAction` whose `ControlAction`s lead to each step's run); a step's run
is a `CreateAction` with its times, its tool and `ContainerImage`, its inputs
(`object`) and results, and the site that ran it (an `Organization` whose
`parentOrganization` is its owner) as agent. Images are `File`s: in the crate
when the caller may have them, otherwise named by their urn; either way with
their Mahiru id as `identifier` and the digest the receipts sign as `sha256`.
"""

from __future__ import annotations

from collections.abc import Sequence

from mahiru.model.crates.graph import (
    DOCKER_IMAGE,
    ENGINE,
    JOB_STATUS,
    LANGUAGE,
    LICENSE,
    PARAMETER_PROFILE,
    STEP_STATUS,
    WORKFLOW_PROFILE,
    Entity,
    Graph,
    add_context,
    compute_digest,
    describe,
    iso_time,
    readme,
    ref,
    refs,
    signed_digests,
    single_values,
)
from mahiru.model.crates.values import (
    CONTEXT,
    METADATA_FILE,
    PROFILES,
    PROVENANCE_FILE,
    README_FILE,
    RECEIPTS_FORMAT,
    RO_CRATE,
    WORKFLOW_FILE,
    WORKFLOW_RO_CRATE,
    CrateOutput,
    CrateSource,
    IncludedImage,
    JobCrate,
    json_bytes,
    urn,
)
from mahiru.model.identifiers import AssetId, ResultId
from mahiru.model.serialization import job_digest, job_to_dict
from mahiru.model.workflow import StepOutputRef, WorkflowStep


class _CrateBuilder:
    """Builds one crate; each method adds one part of the graph."""

    def __init__(self, source: CrateSource) -> None:
        self.source = source
        self.status = source.status
        self.job = source.status.job
        self.g = Graph()
        self.by_step = {step.step: step for step in source.steps}
        self.results = dict(self.job.result_ids())
        for step in source.steps:  # as each step reported them (they may differ)
            for output, result in step.results.items():
                self.results[StepOutputRef(step.step, output)] = result
        self.signed = signed_digests(source.outputs)
        self.included = {str(i.stored): i for i in source.inputs}
        self.included.update({str(o.result): o.image for o in source.outputs if o.image})
        self.sites: dict[str, str] = {}
        self.withheld = {str(o.result): o.withheld for o in source.outputs if o.withheld}

    def data(self, identifier: AssetId | ResultId, example: str | None = None) -> str:
        """The entity of an image: its file in the crate if included, else its urn."""
        image = self.included.get(str(identifier))
        examples = refs([example] if example else [])
        if image is None:
            # Not a data entity of this crate: described, not included.
            return self.g.add(
                urn(identifier),
                "CreativeWork",
                name=str(identifier),
                identifier=str(identifier),
                sha256=self.signed.get(str(identifier)),
                exampleOfWork=examples,
                description=self.withheld.get(
                    str(identifier), "not in this crate: named by its id and digest"
                ),
            )
        return self.g.add(
            image.path,
            "File",
            name=str(identifier),
            identifier=str(identifier),
            sha256=image.digest,
            contentSize=str(image.size),
            encodingFormat="application/x-tar",
            description="the image (a docker save archive) whose /data holds the files",
            exampleOfWork=examples,
        )

    def parameter(self, ident: str, name: str) -> str:
        return self.g.add(
            ident,
            "FormalParameter",
            name=name,
            additionalType="File",
            conformsTo=ref(PARAMETER_PROFILE),
        )

    def agents(self) -> str:
        """The submitting party and person (the person's id if known), the sites, owners."""
        status, g = self.status, self.g
        party = g.add(urn(self.job.submitter), "Organization", name=str(self.job.submitter))
        user = None
        if status.submitted_by is not None:
            user = g.add(
                urn(f"user:{status.submitted_by}"),
                "Person",
                name=status.submitted_by,
                memberOf=ref(party),
                affiliation=ref(party),
            )
        assigned = status.plan.assignments.values() if status.plan is not None else ()
        for site in sorted({*assigned, status.submitter_site}, key=str):
            owner = self.source.owners.get(site)
            if owner is not None:
                g.add(urn(owner), "Organization", name=str(owner))
            self.sites[str(site)] = g.add(
                urn(site),
                "Organization",
                name=str(site),
                description="a Mahiru site",
                parentOrganization=ref(urn(owner) if owner is not None else None),
            )
        return user or party

    def step(self, position: int, definition: WorkflowStep) -> tuple[str, str, str]:
        """A step's HowToStep, tool and connections, and its run: (step, tool, run)."""
        g, name = self.g, definition.name
        ins = [self.parameter(f"#param-{name}-in-{i}", i) for i in definition.inputs]
        outs = [self.parameter(f"#param-{name}-out-{o}", o) for o in definition.outputs]
        made_ids = [self.results[StepOutputRef(name, o)] for o in definition.outputs]
        digest = compute_digest(self.source.outputs, made_ids)
        tool = g.add(
            urn(definition.compute_asset),
            "SoftwareApplication",
            name=str(definition.compute_asset),
            identifier=str(definition.compute_asset),
            description="a Mahiru compute asset (a container image)",
            softwareVersion=f"sha256:{digest}" if digest else None,
            input=refs(ins),
            output=refs(outs),
        )
        connections = []
        for input_name, source in definition.inputs.items():
            origin = (
                f"#param-{source.step}-out-{source.output}"
                if isinstance(source, StepOutputRef)
                else f"#param-input-{source}"
            )
            connections.append(
                g.add(
                    f"#connection-{name}-{input_name}",
                    "ParameterConnection",
                    sourceParameter=ref(origin),
                    targetParameter=ref(f"#param-{name}-in-{input_name}"),
                )
            )
        how = g.add(
            f"#step-{name}",
            "HowToStep",
            name=name,
            position=str(position),
            workExample=ref(tool),
            connection=refs(connections),
        )
        used = [
            self.data(
                self.results[src] if isinstance(src, StepOutputRef) else self.job.inputs[src],
                f"#param-{name}-in-{input_name}",
            )
            for input_name, src in definition.inputs.items()
        ]
        used += [self.data(base) for base in definition.outputs.values() if base is not None]
        made = [
            self.data(result, f"#param-{name}-out-{output}")
            for output, result in zip(definition.outputs, made_ids, strict=True)
        ]
        image = None
        if digest is not None:
            image = g.add(
                f"#image-{digest}",
                "ContainerImage",
                name=str(definition.compute_asset),
                additionalType=ref(DOCKER_IMAGE),
                registry=str(definition.compute_asset.site),
                sha256=digest,
            )
        state = self.by_step.get(name)
        plan = self.status.plan
        site = plan.assignments.get(name) if plan is not None else None
        status = STEP_STATUS.get(state.state) if state else None
        run = g.add(
            f"#run-step-{name}",
            "CreateAction",
            name=f"Run of step {name}" + (f" at {site}" if site is not None else ""),
            description=describe(state),
            instrument=ref(tool),
            object=refs(used),
            result=refs(made),
            startTime=iso_time(state.started_at if state else None),
            endTime=iso_time(state.finished_at if state else None),
            agent=ref(self.sites.get(str(site))),
            actionStatus=status,
            containerImage=ref(image),
        )
        g.add(
            f"#control-{name}",
            "ControlAction",
            name=f"Orchestration of step {name}",
            instrument=ref(how),
            object=ref(run),
            actionStatus=status,
        )
        return how, tool, run

    def workflow(self, steps: list[str], tools: list[str]) -> None:
        workflow, g = self.job.workflow, self.g
        connections = [
            g.add(
                f"#connection-output-{name}",
                "ParameterConnection",
                sourceParameter=ref(f"#param-{source.step}-out-{source.output}"),
                targetParameter=ref(f"#param-output-{name}"),
            )
            for name, source in workflow.outputs.items()
        ]
        g.add(
            WORKFLOW_FILE,
            ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
            name=f"workflow of job {self.status.job_id}",
            description="the job as submitted (Mahiru job JSON: submitter, workflow, inputs)",
            encodingFormat="application/json",
            programmingLanguage=ref(LANGUAGE),
            conformsTo=ref(WORKFLOW_PROFILE),
            version=job_digest(self.job),
            input=refs([f"#param-input-{n}" for n in workflow.inputs]),
            output=refs([f"#param-output-{n}" for n in workflow.outputs]),
            hasPart=refs(tools),
            step=refs(steps),
            connection=refs(connections),
        )
        g.add(LANGUAGE, "ComputerLanguage", name="Mahiru workflow", alternateName="mahiru")

    def receipts(self, documents: dict[str, bytes]) -> None:
        """A receipt chain file per output whose chain the site holds."""
        for output in self.source.outputs:
            if output.chain is None:
                continue
            digest = self.signed.get(str(output.result))
            record = {
                "id": str(output.result),
                "image_digest": f"sha256:{digest}" if digest else None,
                "metadata": output.chain.to_metadata(),
            }
            path = f"receipts/{output.name}.json"
            documents[path] = json_bytes(record)
            self.g.add(
                path,
                "File",
                name=f"receipt chain of output {output.name}",
                encodingFormat="application/json",
                conformsTo=ref(RECEIPTS_FORMAT),
                about=ref(self.data(output.result)),
            )

    def job_run(self, agent: str, controls: list[str]) -> str:
        status, g, job = self.status, self.g, self.job
        run = g.add(
            f"#run-{status.job_id}",
            "CreateAction",
            name=f"Run of job {status.job_id}",
            description=f"job {status.job_id}: {status.state.value}"
            + (f" ({status.reason})" if status.reason else ""),
            instrument=ref(WORKFLOW_FILE),
            object=refs([self.data(a, f"#param-input-{n}") for n, a in job.inputs.items()]),
            result=refs([self.data(o.result, f"#param-output-{o.name}") for o in self.outputs]),
            startTime=iso_time(status.started_at or status.submitted_at),
            endTime=iso_time(status.finished_at),
            agent=ref(agent),
            actionStatus=JOB_STATUS.get(status.state),
        )
        g.add(
            ENGINE,
            "SoftwareApplication",
            name="Mahiru",
            description="federated, policy-driven data exchange: plans and runs jobs",
            softwareVersion=self.source.version,
        )
        g.add(
            f"#orchestrate-{status.job_id}",
            "OrganizeAction",
            name=f"Orchestration of job {status.job_id}",
            instrument=ref(ENGINE),
            object=refs(controls),
            result=ref(run),
            agent=ref(self.sites[str(status.submitter_site)]),
            startTime=iso_time(status.submitted_at),
            endTime=iso_time(status.finished_at),
            actionStatus=JOB_STATUS.get(status.state),
        )
        return run

    @property
    def outputs(self) -> Sequence[CrateOutput]:
        return self.source.outputs


def build_crate(source: CrateSource) -> JobCrate:
    """The crate of `source`'s job: its metadata, workflow, PROV and receipt chain files."""
    b = _CrateBuilder(source)
    status, workflow = source.status, source.status.job.workflow
    documents = {
        README_FILE: readme(status).encode(),
        WORKFLOW_FILE: json_bytes(job_to_dict(source.status.job)),
        PROVENANCE_FILE: json_bytes(dict(source.provenance)),
    }
    agent = b.agents()
    for name in workflow.inputs:
        b.parameter(f"#param-input-{name}", name)
    for name in workflow.outputs:
        b.parameter(f"#param-output-{name}", name)
    parts = [b.step(n, workflow.steps[s]) for n, s in enumerate(workflow.topological_order())]
    b.workflow([how for how, _, _ in parts], [tool for _, tool, _ in parts])
    controls = [f"#control-{s}" for s in workflow.topological_order()]
    run = b.job_run(agent, controls)
    b.receipts(documents)
    add_context(b.g, status.job_id, run)
    images = tuple({i.path: i for i in b.included.values()}.values())
    root: Entity = {
        "@id": "./",
        "@type": "Dataset",
        "name": f"Mahiru job {status.job_id}",
        "description": f"how job {status.job_id} of {status.job.submitter} made its results,"
        " with their signed receipts, and the outputs its submitter may use",
        "datePublished": iso_time(status.finished_at or status.updated_at),
        "license": ref(LICENSE),
        "author": ref(agent),
        "publisher": ref(urn(status.job.submitter)),
        "conformsTo": refs(list(PROFILES)),
        "mainEntity": ref(WORKFLOW_FILE),
        "hasPart": refs([*documents, *(i.path for i in images)]),
        "mentions": refs([run, *(action for _, _, action in parts)]),
    }
    descriptor: Entity = {
        "@id": METADATA_FILE,
        "@type": "CreativeWork",
        "conformsTo": refs([RO_CRATE, WORKFLOW_RO_CRATE]),
        "about": {"@id": "./"},
    }
    graph = [descriptor, root, *b.g.entities.values()]
    metadata = {"@context": CONTEXT, "@graph": [single_values(entity) for entity in graph]}
    return JobCrate(metadata, documents, images)


__all__ = ["IncludedImage", "build_crate"]
