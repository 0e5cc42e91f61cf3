"""The Celery worker (``zhiku worker``): runs the same job code as the embedded runner, fed through Redis.

Celery is only a transport (see :mod:`zhiku.jobs.dispatch`): ``zhiku.run_job(job_id)`` claims the job row
atomically and runs it with :class:`~zhiku.jobs.runner.JobRunner`, whose heartbeat thread keeps running jobs
alive, requeues the jobs of dead workers and re-sends forgotten ones. :func:`run_worker` is handed the task
table the jobs run with (``zhiku worker`` passes :mod:`zhiku.pipeline.tasks`). Messages are acknowledged after
the job ran (``acks_late``), so a worker killed mid-job has its message redelivered; the claim makes that
idempotent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from celery import Celery

from zhiku.config import Settings, get_settings
from zhiku.jobs.dispatch import QUEUE, RUN_JOB_TASK, dispatch

if TYPE_CHECKING:
    from zhiku.jobs.runner import GroupTask, Task

log = logging.getLogger(__name__)
_state: dict[str, Any] = {}
_state_lock = threading.Lock()


def _runner(tasks: Mapping[str, Task] | None = None, group_tasks: Mapping[str, GroupTask] | None = None) -> Any:
    """This worker process's job runner (heartbeat only; Celery delivers the jobs), started by :func:`run_worker`
    with its task table."""
    with _state_lock:
        if "runner" not in _state:
            from zhiku.core import Zhiku
            from zhiku.jobs.runner import JobRunner

            if tasks is None or group_tasks is None:
                raise RuntimeError("the worker's job runner is not started: run the worker with run_worker()")
            zhiku = Zhiku(get_settings())
            runner = JobRunner(zhiku, poll=False, tasks=tasks, group_tasks=group_tasks)
            runner.start()
            _state["runner"] = runner
        return _state["runner"]


def run_job(job_id: str) -> None:
    """The Celery task: run the job if it is runnable; re-send it for later if it is scheduled later."""
    runner = _runner()
    wait = runner.run_job(job_id)
    if wait is not None:
        dispatch(runner.zhiku, [job_id], countdown=wait)


def create_celery(settings: Settings | None = None) -> Celery:
    """The worker's Celery app on the Redis broker from the settings."""
    settings = settings or get_settings()
    if not settings.redis_url:
        from zhiku.errors import ConfigError

        raise ConfigError("the Celery worker needs redis_url (ZHIKU_REDIS_URL), its broker")
    app = Celery("zhiku", broker=settings.redis_url)
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,  # acknowledge after the job ran: a killed worker's message is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # jobs are long; do not hoard them
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        broker_transport_options={"visibility_timeout": 3600},
    )
    app.task(name=RUN_JOB_TASK)(run_job)
    return app


def run_worker(
    concurrency: int, loglevel: str = "INFO", *, tasks: Mapping[str, Task], group_tasks: Mapping[str, GroupTask]
) -> None:
    """Run a worker in this process (threads share one loaded model) that runs jobs with ``tasks`` and
    ``group_tasks`` (see :class:`~zhiku.jobs.runner.JobRunner`)."""
    app = create_celery()
    # open the stores, requeue interrupted jobs and start the heartbeat before taking messages
    _runner(tasks, group_tasks)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            "--pool=threads",
            f"--loglevel={loglevel}",
            "-Q",
            QUEUE,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
