#!/usr/bin/env python3
"""Django's command line for the example: the role runs `python manage.py
migrate` (the Procfile's release line) and `collectstatic` as release
commands, `work` as the worker process and `report` as a scheduled job."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notes_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
