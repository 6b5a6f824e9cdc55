"""Two views: enough to show that data written through one release is read
by the next one, and by the one a rollback returns to."""
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

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
