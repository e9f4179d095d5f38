"""Reads Missive's usage with the official Resend Python SDK, unmodified, then runs into the
tenant's rate limit.

Run by the suite with RESEND_API_URL pointing at a test server and RESEND_API_KEY set to a tenant
key whose tenant is allowed LIMIT requests per minute and has sent some mail. Prints one JSON
object: the usage as the SDK returned it, and the error the SDK raised past the limit (its type,
code, error type and the rate-limit headers it kept).
"""
import json
import os

import resend

resend.api_key = os.environ["RESEND_API_KEY"]
limit = int(os.environ["LIMIT"])

usage = resend.Usage.get()
headers = dict(usage.pop("http_headers", {}) or {})

refused = None
for _ in range(limit + 1):
    try:
        resend.Usage.get()
    except resend.exceptions.ResendError as exc:
        refused = {
            "type": type(exc).__name__,
            "code": exc.code,
            "error_type": exc.error_type,
            "headers": {k.lower(): v for k, v in (exc.headers or {}).items()
                        if k.lower().startswith(("ratelimit", "retry-after"))},
        }
        break

print(json.dumps({
    "usage": usage,
    "headers": {k.lower(): v for k, v in headers.items() if k.lower().startswith("ratelimit")},
    "refused": refused,
}, default=str))
