"""post_entry ACCOUNT AMOUNT: adds an entry under the account's lock, or says it is busy.

The lock is django-pglocks' advisory_lock, from pglocks.django, with wait=False (or
--timeout seconds). Prints "posted" or "busy".
"""
from django.core.management.base import BaseCommand
from django.db import transaction

from ledger.models import Entry
from pglocks.django import advisory_lock


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("account")
        parser.add_argument("amount", type=int)
        parser.add_argument("--timeout", type=float)
        parser.add_argument("--using", default="default")

    def handle(self, account, amount, timeout, using, **options):
        wait = timeout is not None
        with advisory_lock(f"account:{account}", wait=wait, timeout=timeout, using=using) as acquired:
            if not acquired:
                self.stdout.write("busy")
                return
            with transaction.atomic(using=using):
                Entry.objects.using(using).create(account=account, amount=amount)
            self.stdout.write("posted")
