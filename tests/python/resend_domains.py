"""Drives Missive's Domains API with the official Resend Python SDK, unmodified.

Run by the suite with RESEND_API_URL pointing at a test server, RESEND_API_KEY set to a tenant
key, DOMAIN (a name the suite's DNS server publishes nothing for yet) and ZONE_FILE, the file the
DNS server reads its records from. Creates the domain, publishes the records the answer lists,
verifies, reads, lists, updates and removes it, and prints one JSON object with what the SDK
returned at each step.
"""
import json
import os

import resend

resend.api_key = os.environ["RESEND_API_KEY"]
domain, zone_file = os.environ["DOMAIN"], os.environ["ZONE_FILE"]


def plain(value):
    """The response without the SDK's own additions."""
    value = dict(value)
    value.pop("http_headers", None)
    return value


created = plain(resend.Domains.create({"name": domain}))
unverified = plain(resend.Domains.verify(created["id"]))

zone = {}
for record in created["records"]:
    zone.setdefault(record["fqdn"], {"TXT": [], "MX": []})[record["type"]].append(record["value"])
with open(zone_file, "w") as f:
    json.dump(zone, f)

verified = plain(resend.Domains.verify(created["id"]))
got = plain(resend.Domains.get(created["id"]))
listed = plain(resend.Domains.list())
updated = plain(resend.Domains.update({"id": created["id"], "open_tracking": True, "tls": "enforced"}))
after_update = plain(resend.Domains.get(created["id"]))
removed = plain(resend.Domains.remove(created["id"]))
try:
    resend.Domains.get(created["id"])
    gone = None
except resend.exceptions.ResendError as exc:
    gone = {"type": type(exc).__name__, "code": exc.code}

print(json.dumps({
    "created": created, "unverified": unverified, "verified": verified, "got": got,
    "listed": listed, "updated": updated, "after_update": after_update, "removed": removed,
    "gone": gone,
}, default=str))
