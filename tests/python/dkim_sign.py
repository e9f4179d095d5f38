"""Signs a message with DKIM (dkimpy), as a sending domain's own server would.

Reads JSON on stdin: {"message": "...", "domain": "...", "selector": "..."}. Makes a 2048-bit RSA
key with openssl, signs the message with it (relaxed/relaxed, rsa-sha256), and prints JSON:
{"signed": "<the message with its DKIM-Signature>", "record": "v=DKIM1; k=rsa; p=..."}.
"""
import base64
import json
import subprocess
import sys

import dkim

given = json.load(sys.stdin)
private = subprocess.run(["openssl", "genrsa", "2048"], check=True, capture_output=True).stdout
public_der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=private,
                            check=True, capture_output=True).stdout
signature = dkim.sign(given["message"].encode(), given["selector"].encode(),
                      given["domain"].encode(), private,
                      canonicalize=(b"relaxed", b"relaxed"),
                      include_headers=[b"from", b"to", b"subject", b"message-id", b"date"])
print(json.dumps({
    "signed": signature.decode() + given["message"],
    "record": "v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode(),
}))
