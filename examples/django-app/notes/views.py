"""Notes, to show that data written through one release is read by the next
one and by the one a rollback returns to; jobs, queued here and run by the
worker process (notes/management/commands/work.py)."""
import json
import re

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from notes import jobs
from notes.models import Note

# Which code is serving: tests deploy a copy with another value.
RELEASE = "1"


def index(request):
    """The health path: it answers only when the database and its table are there."""
    return JsonResponse({"message": "Hello from Django", "release": RELEASE, "notes": Note.objects.count()})


# An API for scripts, not a form in a browser: no CSRF token to send.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def notes(request):
    if request.method == "POST":
        Note.objects.create(text=request.body.decode()[:200])
    return JsonResponse({"notes": list(Note.objects.order_by("id").values_list("text", flat=True))})


@csrf_exempt
@require_http_methods(["POST"])
def enqueue(request):
    """Queue a job for the worker process: {"seconds": N} of work."""
    seconds = float(json.loads(request.body or b"{}").get("seconds", 0))
    return JsonResponse({"id": jobs.enqueue(min(max(seconds, 0), 60))})


def job(request, job_id):
    state, record = jobs.state(job_id) if re.fullmatch(r"[0-9]+-[0-9a-f]{8}", job_id) else (None, None)
    return JsonResponse({"state": state, **(record or {})}, status=200 if state else 404)
