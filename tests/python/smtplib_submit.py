"""Submits two messages with Python's smtplib: STARTTLS + AUTH PLAIN (with a Bcc), and implicit
TLS + AUTH LOGIN. The listeners' certificate is self-signed, so verification is off here."""
import os
import smtplib
import ssl
from email.message import EmailMessage

port, tls_port, key = int(os.environ["SMTP_PORT"]), int(os.environ["SMTPS_PORT"]), os.environ["SMTP_KEY"]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE

message = EmailMessage()
message["From"] = "Sender <me@acme.test>"
message["To"] = "plain@x.test"
message["Bcc"] = "hidden@x.test"
message["Subject"] = "via STARTTLS"
message.set_content("Hello from smtplib")
with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
    smtp.ehlo("smtplib.test")
    smtp.starttls(context=context)
    smtp.ehlo("smtplib.test")
    smtp.user, smtp.password = "anyone", key
    smtp.auth("PLAIN", smtp.auth_plain)
    refused = smtp.send_message(message)
    assert refused == {}, refused

message = EmailMessage()
message["From"] = "me@acme.test"
message["To"] = "tls@x.test"
message["Subject"] = "via implicit TLS"
message.set_content("Hello over implicit TLS")
with smtplib.SMTP_SSL("127.0.0.1", tls_port, context=context, timeout=20) as smtp:
    smtp.ehlo("smtplib.test")
    smtp.user, smtp.password = "anyone", key
    smtp.auth("LOGIN", smtp.auth_login)
    refused = smtp.send_message(message)
    assert refused == {}, refused
print("ok")
