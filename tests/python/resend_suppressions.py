"""Drives Missive's Suppressions API with the official Resend Python SDK, unmodified.

Run by the suite with RESEND_API_URL pointing at a test server and RESEND_API_KEY set to a tenant
key whose list already holds BOUNCED (suppressed by a hard bounce). Adds, reads, lists, pages and
removes entries, single and in batches, and prints one JSON object of what it saw.
"""
import json
import os

import resend

resend.api_key = os.environ["RESEND_API_KEY"]
bounced = os.environ["BOUNCED"]

added = resend.Suppressions.add({"email": "Manual@Example.test"})
again = resend.Suppressions.add({"email": "manual@example.test"})
by_id = resend.Suppressions.get(added["id"])
by_email = resend.Suppressions.get("MANUAL@example.test")
batch = resend.Suppressions.Batch.add({"emails": ["b1@example.test", "b2@example.test"]})
everything = resend.Suppressions.list()
manual = resend.Suppressions.list({"origin": "manual"})
bounces = resend.Suppressions.list({"origin": "bounce"})
first_page = resend.Suppressions.list({"limit": 2})
second_page = resend.Suppressions.list({"limit": 2, "after": first_page["data"][-1]["id"]})
removed_by_email = resend.Suppressions.remove("manual@example.test")
removed_batch = resend.Suppressions.Batch.remove({"ids": [e["id"] for e in batch["data"]]})
removed_bounce = resend.Suppressions.remove(bounced)

try:
    resend.Suppressions.get("manual@example.test")
    missing = None
except Exception as exc:
    missing = {"type": type(exc).__name__, "message": str(exc)}
try:
    resend.Suppressions.add({"email": "not an address"})
    invalid = None
except Exception as exc:
    invalid = {"type": type(exc).__name__, "message": str(exc)}

print(json.dumps({
    "added": added, "again": again, "by_id": by_id, "by_email": by_email, "batch": batch,
    "everything": everything, "manual": manual, "bounces": bounces,
    "first_page": first_page, "second_page": second_page,
    "removed_by_email": removed_by_email, "removed_batch": removed_batch,
    "removed_bounce": removed_bounce, "after": resend.Suppressions.list(),
    "missing": missing, "invalid": invalid,
}, default=str))
