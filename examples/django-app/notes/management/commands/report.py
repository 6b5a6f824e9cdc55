"""A scheduled job (gunicorn_schedules): writes how many notes and finished
jobs there are into data/reports/, and says so in the journal."""
import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from notes import jobs
from notes.models import Note
from notes.views import RELEASE


class Command(BaseCommand):
    help = "Write a report of the notes and jobs."

    def add_arguments(self, parser):
        parser.add_argument("--label", default="report")
        parser.add_argument("--data-dir", default="", help="where the app's data lives (for the report)")

    def handle(self, *args, label, data_dir, **options):
        done = jobs.ROOT / "done"
        report = {"label": label, "release": RELEASE, "notes": Note.objects.count(),
                  "jobs_done": len(list(done.glob("*.json"))) if done.is_dir() else 0,
                  "data_dir": data_dir, "time": time.time()}
        target = settings.BASE_DIR / "data" / "reports" / f"{int(time.time() * 1000)}.json"
        jobs.write(target, report)
        self.stdout.write(json.dumps(report))
