"""Settings of the test project: two PostgreSQL databases from the libpq environment.

default  PGDATABASE (on PGHOST, PGPORT, PGUSER)
other    PGLOCKS_OTHER_DB on the same server
"""
import os

SECRET_KEY = "pglocks-test-project"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["ledger"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _database(name):
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "HOST": os.environ.get("PGHOST", ""),
        "PORT": os.environ.get("PGPORT", ""),
        "USER": os.environ.get("PGUSER", ""),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
    }


DATABASES = {
    "default": _database(os.environ.get("PGDATABASE", "postgres")),
    "other": _database(os.environ.get("PGLOCKS_OTHER_DB", "postgres")),
}
