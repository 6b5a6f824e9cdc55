"""The worker process (Procfile: worker): runs queued jobs one at a time.
On TERM (a new release, a rollback, a stop) it finishes the job it holds,
then exits: systemd gives it the process's stop_timeout to do so."""
import os
import signal
import time

from django.core.management.base import BaseCommand

from notes import jobs
from notes.views import RELEASE


class Command(BaseCommand):
    help = "Run queued jobs until told to stop."

    def handle(self, *args, **options):
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        copy = os.environ.get("PROCESS_COPY", "")
        self.stdout.write(f"worker {copy} of release {RELEASE} waiting for jobs", ending="\n")
        self.stdout.flush()
        while not stopping:
            job = jobs.claim()
            if job is None:
                time.sleep(0.2)
                continue
            started = time.time()
            # The job's work; a TERM now waits until it is done.
            deadline = started + job["seconds"]
            while time.time() < deadline:
                time.sleep(min(0.1, max(0, deadline - time.time())))
            jobs.write(jobs.path("done", job["id"]), {**job, "release": RELEASE, "pid": os.getpid(), "copy": copy,
                                                     "started": started, "finished": time.time()})
            os.unlink(jobs.path("running", job["id"]))
            self.stdout.write(f"job {job['id']} done by release {RELEASE}")
            self.stdout.flush()
        self.stdout.write(f"worker {copy} of release {RELEASE} stopped")
