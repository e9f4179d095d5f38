"""Reads received mail with the official Resend Python SDK's Receiving module, unmodified.

Run by the suite with RESEND_API_URL pointing at a test server, RESEND_API_KEY set to a tenant
key whose domain received one message with one attachment. Lists and gets the message, lists and
gets its attachment, fetches the attachment's download_url (no API key) and the same URL with a
changed signature, and prints one JSON object of what it saw.
"""
import base64
import json
import os
import urllib.error
import urllib.request

import resend

resend.api_key = os.environ["RESEND_API_KEY"]

listed = resend.Emails.Receiving.list()
first_page = resend.Emails.Receiving.list({"limit": 1})
email_id = listed["data"][0]["id"]
got = resend.Emails.Receiving.get(email_id)
attachments = resend.Emails.Receiving.Attachments.list(email_id)
attachment = resend.Emails.Receiving.Attachments.get(email_id, attachments["data"][0]["id"])


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, base64.b64encode(response.read()).decode()
    except urllib.error.HTTPError as err:
        return err.code, None


url = attachment["download_url"]
status, content = fetch(url)
signature = url.rsplit("signature=", 1)[1]
changed = ("A" if signature[0] != "A" else "B") + signature[1:]
tampered_status, _ = fetch(url.rsplit("signature=", 1)[0] + "signature=" + changed)

print(json.dumps({
    "list": listed,
    "first_page": first_page,
    "get": got,
    "attachments": attachments,
    "attachment": attachment,
    "download": {"status": status, "content": content},
    "tampered_status": tampered_status,
}))
