"""Delivers to Missive's MX with Python's smtplib, as a sending server would: STARTTLS (the MX's
certificate is self-signed, so verification is off), one message with an attachment for an
address of a receiving domain, then one for an address of a domain that does not receive.

Run by the suite with MX_PORT, TO (the receiving address) and REFUSED_TO (the other). Prints
JSON: {"refused": {"<address>": [code, "reply"]}} for the second message (the first must pass).
"""
import json
import os
import smtplib
import ssl
from email.message import EmailMessage

port = int(os.environ["MX_PORT"])
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE

message = EmailMessage()
message["From"] = "Ann <ann@sender.test>"
message["To"] = os.environ["TO"]
message["Subject"] = "via smtplib"
message.set_content("Hello from smtplib")
message.add_attachment(b"col1,col2\n1,2\n", maintype="text", subtype="csv", filename="data.csv")

with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
    smtp.ehlo("smtplib.sender.test")
    smtp.starttls(context=context)
    smtp.ehlo("smtplib.sender.test")
    refused = smtp.send_message(message)
    assert refused == {}, refused
    other = EmailMessage()
    other["From"] = "ann@sender.test"
    other["To"] = os.environ["REFUSED_TO"]
    other["Subject"] = "not here"
    other.set_content("x")
    try:
        smtp.send_message(other)
        outcome = {}
    except smtplib.SMTPRecipientsRefused as err:
        outcome = {k: [v[0], v[1].decode()] for k, v in err.recipients.items()}
print(json.dumps({"refused": outcome}))
