"""Reads a webhook's events with the official Resend Python SDK, unmodified: lists them, gets one,
lists its attempts and replays it. WEBHOOK_ID and EVENT_ID name them; prints one JSON object.
"""
import json
import os

import resend

resend.api_key = os.environ["RESEND_API_KEY"]
webhook, event = os.environ["WEBHOOK_ID"], os.environ["EVENT_ID"]

listed = resend.Webhooks.list_events(webhook, {"limit": 10})
got = resend.Webhooks.get_event(webhook, event)
attempts = resend.Webhooks.list_event_attempts(webhook, event)
replayed = resend.Webhooks.replay_event(webhook, event)
print(json.dumps({
    "listed": dict(listed),
    "got": dict(got),
    "attempts": dict(attempts),
    "replayed": dict(replayed),
}, default=str))
