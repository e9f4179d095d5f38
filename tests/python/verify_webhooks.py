"""Verifies webhook deliveries as a tenant's receiver would, with the Resend Python SDK's
`Webhooks.verify` (the svix-* headers) and with the `standardwebhooks` package (the webhook-*
headers).

Reads one JSON object on stdin: {"secrets": ["whsec_..."], "deliveries": [{"body": "...",
"headers": {"svix-id": ..., ...}}]}. Prints, for each delivery and each secret, what both
verifiers said: {"resend": true | "<error>", "standardwebhooks": true | "<error>"}.
"""
import json
import sys

import resend
from standardwebhooks.webhooks import Webhook

given = json.load(sys.stdin)
results = []
for delivery in given["deliveries"]:
    body, headers = delivery["body"], {k.lower(): v for k, v in delivery["headers"].items()}
    per_secret = []
    for secret in given["secrets"]:
        outcome = {}
        try:
            resend.Webhooks.verify({
                "payload": body,
                "headers": {
                    "id": headers["svix-id"],
                    "timestamp": headers["svix-timestamp"],
                    "signature": headers["svix-signature"],
                },
                "webhook_secret": secret,
            })
            outcome["resend"] = True
        except Exception as exc:  # the verdict is the output
            outcome["resend"] = f"{type(exc).__name__}: {exc}"
        try:
            Webhook(secret).verify(body, {
                "webhook-id": headers["webhook-id"],
                "webhook-timestamp": headers["webhook-timestamp"],
                "webhook-signature": headers["webhook-signature"],
            })
            outcome["standardwebhooks"] = True
        except Exception as exc:
            outcome["standardwebhooks"] = f"{type(exc).__name__}: {exc}"
        per_secret.append(outcome)
    results.append(per_secret)
print(json.dumps(results))
