"""Drives Missive with the official Resend Python SDK, unmodified.

The test suite runs this with RESEND_API_URL pointing at a test server and RESEND_API_KEY set to
a tenant key, then checks what Missive stored and delivered. Prints one JSON object.
"""
import json
import os

import resend

resend.api_key = os.environ["RESEND_API_KEY"]

plain = resend.Emails.send({
    "from": "Acme <news@acme.test>",
    "to": ["plain@x.test"],
    "subject": "Plain from the SDK",
    "html": "<p>Hello from resend-python</p>",
})

attached = resend.Emails.send({
    "from": "news@acme.test",
    "to": "files@x.test",
    "subject": "Attachment from the SDK",
    "text": "See the attachment.",
    "attachments": [{"filename": "hello.bin", "content": list(b"hello attachment \x00\xff")}],
    "tags": [{"name": "category", "value": "sdk"}],
})

got = resend.Emails.get(attached["id"])

try:
    resend.Emails.send({"from": "news@acme.test", "to": "not-an-address", "subject": "x", "text": "x"})
    error = None
except Exception as exc:  # the SDK raises its own error type, carrying our message
    error = {"type": type(exc).__name__, "message": str(exc)}

print(json.dumps({"plain": plain["id"], "attached": attached["id"], "got": dict(got), "error": error}))
