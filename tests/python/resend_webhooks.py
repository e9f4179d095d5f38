"""Drives Missive's Webhooks API with the official Resend Python SDK, unmodified.

Run by the suite with RESEND_API_URL pointing at a test server and RESEND_API_KEY set to a tenant
key, WEBHOOK_URL an endpoint Missive accepts. Creates, reads, lists, updates, rotates and removes
an endpoint, and prints one JSON object of what it saw.
"""
import json
import os

import resend

resend.api_key = os.environ["RESEND_API_KEY"]
url = os.environ["WEBHOOK_URL"]

created = resend.Webhooks.create({"endpoint": url, "events": ["email.sent", "email.delivered"]})
got = resend.Webhooks.get(created["id"])
listed = resend.Webhooks.list({"limit": 10})
updated = resend.Webhooks.update({
    "webhook_id": created["id"],
    "events": ["email.bounced", "email.sent", "email.delivered"],
    "status": "disabled",
})
after_update = resend.Webhooks.get(created["id"])
rotated = resend.Webhooks.rotate_signing_secret(created["id"])
after_rotation = resend.Webhooks.get(created["id"])

try:
    resend.Webhooks.create({"endpoint": "http://169.254.169.254/latest", "events": ["email.sent"]})
    refused = None
except Exception as exc:
    refused = {"type": type(exc).__name__, "message": str(exc)}

removed = resend.Webhooks.remove(created["id"])
try:
    resend.Webhooks.get(created["id"])
    gone = None
except Exception as exc:
    gone = {"type": type(exc).__name__, "message": str(exc)}

print(json.dumps({
    "created": dict(created),
    "got": dict(got),
    "listed": dict(listed),
    "updated": dict(updated),
    "after_update": dict(after_update),
    "rotated": dict(rotated),
    "after_rotation": dict(after_rotation),
    "refused": refused,
    "removed": dict(removed),
    "gone": gone,
}, default=str))
