"""A local DNS server for the suite (dnslib): answers from a zone given as JSON in argv[1], or
read afresh for every query from the file named by argv[1] after an `@` (so a test can change
its records while the server runs). A name maps to a list of addresses (A and AAAA) or to
{"A": [...], "AAAA": [...], "TXT": [...], "MX": ["host", ...]} (MX preference 10); a TXT value longer than 255 bytes is split into
strings of 255, as DNS requires. Other names are NXDOMAIN. Listens on UDP and TCP on 127.0.0.1
at a free port, prints the port on one line, and serves until killed.
"""
import ipaddress
import json
import socket
import sys
import time

from dnslib import AAAA, MX, QTYPE, RR, TXT, A, RCODE
from dnslib.server import BaseResolver, DNSLogger, DNSServer

def load_zone():
    source = sys.argv[1]
    if source.startswith("@"):
        with open(source[1:]) as f:
            source = f.read()
    zone = {}
    for name, records in json.loads(source).items():
        if isinstance(records, list):
            records = {"A": [a for a in records if ipaddress.ip_address(a).version == 4],
                       "AAAA": [a for a in records if ipaddress.ip_address(a).version == 6]}
        zone[name.lower().rstrip(".") + "."] = records
    return zone


class Zone(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).lower()
        zone = load_zone()
        if name not in zone:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        records, qtype = zone[name], request.q.qtype
        for text in records.get("A", []):
            if qtype in (QTYPE.A, QTYPE.ANY):
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(text), ttl=1))
        for text in records.get("AAAA", []):
            if qtype in (QTYPE.AAAA, QTYPE.ANY):
                reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(text), ttl=1))
        for text in records.get("TXT", []):
            if qtype in (QTYPE.TXT, QTYPE.ANY):
                data = text.encode()
                parts = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(parts), ttl=1))
        for host in records.get("MX", []):
            if qtype in (QTYPE.MX, QTYPE.ANY):
                reply.add_answer(RR(request.q.qname, QTYPE.MX, rdata=MX(host, 10), ttl=1))
        return reply


# A port free for both UDP and TCP.
while True:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    try:
        # Quiet: the suite stops reading stdout once it has the port.
        quiet = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data")
        udp = DNSServer(Zone(), port=port, address="127.0.0.1", logger=quiet)
        tcp = DNSServer(Zone(), port=port, address="127.0.0.1", tcp=True, logger=quiet)
        break
    except OSError:
        continue
udp.start_thread()
tcp.start_thread()
print(port, flush=True)
while True:
    time.sleep(3600)
