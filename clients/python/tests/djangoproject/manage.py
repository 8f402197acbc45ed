#!/usr/bin/env python3
"""A small Django project that uses pglocks.django.advisory_lock, for the package tests."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
