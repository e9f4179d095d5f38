"""Verifies a message's DKIM signature with dkimpy, a verifier nobody here wrote: the message on
stdin, the key records as JSON in DKIM_KEYS ({"selector._domainkey.domain": "v=DKIM1; ..."}), as
the local DNS server publishes them. Prints `pass` or `fail: <why>` and exits 0 either way; any
other exit is the script's own failure.
"""
import json
import os
import sys

import dkim

records = {name.lower().rstrip("."): value for name, value in json.loads(os.environ["DKIM_KEYS"]).items()}


def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    return records.get(name.lower().rstrip("."), "").encode()


message = sys.stdin.buffer.read()
verifier = dkim.DKIM(message)
try:
    ok = verifier.verify(dnsfunc=dnsfunc)
except dkim.DKIMException as e:
    print(f"fail: {e}")
    sys.exit(0)
print("pass" if ok else "fail: the signature does not verify")
