"""A local DNS server for the suite (dnslib): answers A and AAAA queries from a zone given as JSON
in argv[1] ({"name.": ["10.0.0.5", "::1"]}), NXDOMAIN for anything else. Listens on UDP and TCP
on 127.0.0.1 at a free port, prints the port on one line, and serves until killed.
"""
import ipaddress
import json
import socket
import sys
import time

from dnslib import AAAA, QTYPE, RR, A, RCODE
from dnslib.server import BaseResolver, DNSLogger, DNSServer

zone = {name.lower().rstrip(".") + ".": addresses for name, addresses in json.loads(sys.argv[1]).items()}


class Zone(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).lower()
        if name not in zone:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for text in zone[name]:
            address = ipaddress.ip_address(text)
            if address.version == 4 and request.q.qtype in (QTYPE.A, QTYPE.ANY):
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(text), ttl=1))
            if address.version == 6 and request.q.qtype in (QTYPE.AAAA, QTYPE.ANY):
                reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(text), ttl=1))
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
