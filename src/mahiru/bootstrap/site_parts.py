"""A site run as several processes: web workers beside one loops process.

Both `mahiru serve site --workers N` (`cli/site_processes.py`) and Gunicorn
(`mahiru.asgi.site_web`, `deploy/service/gunicorn.conf.py`) build each process
here: `site_part` builds the graph of one process, with the writes counted in
the site's `run/write-counts` file and the metrics in its `run/metrics` folder;
`run_loops` runs the loops process until told to stop. What keeps the
processes in step is in docs/architecture.md (Processes).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

from mahiru.bootstrap.loop_wakes import WakeListener, site_loops, wake_address
from mahiru.bootstrap.site import Site, SiteProcess, build_site
from mahiru.config import SiteConfig
from mahiru.storage.write_counts import SharedWriteCounts

logger = logging.getLogger("mahiru.site")

#: The variable prometheus_client reads, when imported, for where processes share counts.
METRICS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def run_dir(config: SiteConfig) -> Path:
    """Where the processes of the site of `config` share their counts and metrics."""
    return config.data_dir / "run"


def prepare_processes(config: SiteConfig) -> None:
    """Before the processes start: empty the metrics folder of an earlier run and name it
    in METRICS_VARIABLE, which the processes (started after) inherit."""
    metrics = run_dir(config) / "metrics"
    shutil.rmtree(metrics, ignore_errors=True)
    metrics.mkdir(parents=True)
    os.environ[METRICS_VARIABLE] = str(metrics)


def site_part(config: SiteConfig, *, web: bool) -> Site:
    """This process's graph of the site of `config`: a web worker (`web`) or the loops
    process. `prepare_processes` must have run (in this process or the one starting it)."""
    from prometheus_client import values

    # Chosen when prometheus_client was first imported, which may have been before the
    # metrics folder was named: choose again, now that it is (before any metric is made).
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    shared = run_dir(config)
    process = SiteProcess(
        web=web,
        write_counts=SharedWriteCounts(shared / "write-counts"),
        metrics_dir=shared / "metrics",
    )
    return build_site(config, process=process)


def run_loops(site: Site, stop: threading.Event) -> None:
    """Run every background loop of `site` (built by `site_part`, not `web`), woken by the
    web workers, until `stop` is set; then stop them and close the site."""
    loops = {loop.name: loop for loop in site_loops(site.services, site.jobs)}
    wakes = WakeListener(loops, wake_address(site.config.data_dir))
    try:
        wakes.start()
        site.services.replication.loop.start()
        site.jobs.start()
        logger.info("site loops running", extra={"site": site.config.site_id})
        while not stop.wait(1.0):  # a timeout, so that signal handlers run meanwhile
            pass
    finally:
        site.jobs.stop()
        site.services.replication.loop.stop()
        wakes.stop()
        site.close()
        logger.info("site loops stopped", extra={"site": site.config.site_id})
