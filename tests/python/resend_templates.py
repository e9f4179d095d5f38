"""Drives Missive's Templates API with the official Resend Python SDK, unmodified.

Run by the suite with RESEND_API_URL pointing at a test server and RESEND_API_KEY set to a tenant
key. Creates, reads, lists, updates, publishes, duplicates and removes templates, sends with one,
and prints one JSON object of what it saw.
"""
import json
import os

import resend

resend.api_key = os.environ["RESEND_API_KEY"]

created = resend.Templates.create({
    "name": "Order shipped",
    "alias": "order-shipped",
    "from": "Acme <orders@acme.test>",
    "subject": "Order {{ORDER}} is on its way",
    "reply_to": "help@acme.test",
    "html": "<p>Hi {{NAME}}, order <b>{{ORDER}}</b> ships with {{CARRIER}}.</p>",
    "text": "Hi {{NAME}}, order {{ORDER}} ships with {{CARRIER}}.",
    "variables": [
        {"key": "NAME", "type": "string"},
        {"key": "ORDER", "type": "number"},
        {"key": "CARRIER", "type": "string", "fallback_value": "UPS"},
    ],
})

before_publish = resend.Templates.get(created["id"])

try:
    resend.Emails.send({"to": ["early@x.test"], "template": {"id": "order-shipped", "variables": {"NAME": "x", "ORDER": 1}}})
    draft_error = None
except Exception as exc:
    draft_error = {"type": type(exc).__name__, "message": str(exc)}

published = resend.Templates.publish(created["id"])
by_alias = resend.Templates.get("order-shipped")

updated = resend.Templates.update({"id": created["id"], "name": "Order shipped (v2)"})
copy = resend.Templates.duplicate(created["id"])
listed = resend.Templates.list({"limit": 10})

sent = resend.Emails.send({
    "to": ["buyer@x.test"],
    "template": {"id": "order-shipped", "variables": {"NAME": "Ann <ann>", "ORDER": 42}},
})

removed = resend.Templates.remove(copy["id"])

try:
    resend.Emails.send({"to": ["x@x.test"], "template": {"id": "order-shipped", "variables": {"NAME": "x"}}})
    missing_error = None
except Exception as exc:
    missing_error = {"type": type(exc).__name__, "message": str(exc)}

print(json.dumps({
    "created": dict(created),
    "before_publish": dict(before_publish),
    "draft_error": draft_error,
    "published": dict(published),
    "by_alias": dict(by_alias),
    "updated": dict(updated),
    "copy": dict(copy),
    "listed": {"object": listed["object"], "has_more": listed["has_more"], "data": [dict(t) for t in listed["data"]]},
    "sent": dict(sent),
    "removed": dict(removed),
    "missing_error": missing_error,
}))
