"""A job queue without a broker: one JSON file per job in the shared data
directory, which the web app and the worker processes (Procfile: worker)
both see. A job is queued by renaming a finished file into queue/, claimed
by the worker that renames it into running/ first, and recorded in done/
with the release and process that ran it."""
import json
import os
import time
import uuid

from django.conf import settings

ROOT = settings.BASE_DIR / "data" / "jobs"


def path(state, job_id):
    return ROOT / state / f"{job_id}.json"


def write(target, record):
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_text(json.dumps(record))
    os.replace(partial, target)


def enqueue(seconds):
    """Queue a job that takes SECONDS; its id."""
    job_id = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
    write(path("queue", job_id), {"id": job_id, "seconds": seconds, "queued": time.time()})
    return job_id


def claim():
    """The oldest queued job, now this process's (None when the queue is empty)."""
    queue = ROOT / "queue"
    for name in sorted(os.listdir(queue)) if queue.is_dir() else []:
        if name.startswith("."):
            continue
        job_id = name[: -len(".json")]
        running = path("running", job_id)
        running.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(queue / name, running)
        except FileNotFoundError:
            continue  # another worker took it
        return json.loads(running.read_text())
    return None


def state(job_id):
    """(state, record) of a job: queue, running or done."""
    for name in ("done", "running", "queue"):
        try:
            return name, json.loads(path(name, job_id).read_text())
        except FileNotFoundError:
            continue
    return None, None
