"""Settings of the Django example, as deployed by gunicorn_uvicorn_nginx.

Everything the host decides comes from the environment (gunicorn_env). The
SQLite database lives in data/, a shared path the role links into every
release: the code is replaced on each deploy, the data is not.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(",")
# nginx in front sets X-Forwarded-Proto; trust it for request.is_secure().
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = ["django.contrib.staticfiles", "notes"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "notes_site.urls"
ASGI_APPLICATION = "notes_site.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "data" / "db.sqlite3",
        # Several workers write to one file: wait for the lock instead of failing.
        "OPTIONS": {"timeout": 20},
    }
}

# collectstatic copies here, inside the release; nginx serves it
# (nginx_static_locations: [{location: /static/, path: staticfiles}]).
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
