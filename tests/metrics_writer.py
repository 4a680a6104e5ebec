"""Other processes of one command, for the multiprocess-metrics tests (run as ``python -m tests.metrics_writer``).

``writer N [--hold]``: a second process of a ``serve`` (PROMETHEUS_MULTIPROC_DIR set by the test) that records N
finished jobs and N ``POST /predict`` requests and counts as one live Celery worker; ``--hold`` keeps it alive until
stdin closes.

``pool PORT``: a stand-in for ``reportscore worker``'s main process: multiprocess mode, the worker metrics endpoint,
then two forked pool processes using the hooks Celery's ``worker_process_init`` / ``worker_process_shutdown``
signals call. The first records 2 jobs and exits cleanly; the second records 3 and waits to be killed. Prints
``ready <metrics dir> <pid of the second>``; exits when stdin closes.
"""

from __future__ import annotations

import os
import sys
import time


def writer(n: int, *, hold: bool) -> None:
    from reportscore.monitoring import metrics

    metrics.worker_process_started(model_name="writer", model_version=f"w-{os.getpid()}")
    metrics.observe_jobs_finished("SUCCESS", [0.01] * n)
    for _ in range(n):
        metrics.observe_http(method="POST", route="/predict", status=202, seconds=0.002)
    print("written", flush=True)
    if hold:
        sys.stdin.read()


def pool(port: int) -> None:
    from reportscore.monitoring import multiproc

    metrics_dir = multiproc.enable(None)  # as `reportscore worker` does, before prometheus_client is imported
    from reportscore.monitoring import metrics

    stop = multiproc.serve_metrics("127.0.0.1", port)
    assert stop is not None
    children: list[int] = []
    for jobs, exits in ((2, True), (3, False)):
        pid = os.fork()
        if pid == 0:  # a pool process
            metrics.worker_process_started(model_name="pool", model_version="p-1")
            metrics.observe_jobs_finished("SUCCESS", [0.5] * jobs)
            if exits:
                metrics.worker_process_stopping()
                os._exit(0)
            time.sleep(600)
            os._exit(0)
        children.append(pid)
    os.waitpid(children[0], 0)
    print(f"ready {metrics_dir.path} {children[1]}", flush=True)
    sys.stdin.read()
    stop()
    metrics_dir.close()


if __name__ == "__main__":
    if sys.argv[1] == "writer":
        writer(int(sys.argv[2]), hold="--hold" in sys.argv)
    else:
        pool(int(sys.argv[2]))
