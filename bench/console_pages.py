"""Times the console's pages over a signed-in session (bench/console_probe.sh runs it).

Arguments: base URL, a tenant key, the admin key, fetches per page. Signs in as the tenant and as
the operator through the sign-in form, fetches each page that many times, and prints each page's
median and slowest time in milliseconds; fails when a page answers anything but 200.
"""

import html
import http.client
import json
import re
import statistics
import sys
import time
import urllib.parse

BASE, TENANT_KEY, ADMIN_KEY, FETCHES = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
HOST = urllib.parse.urlparse(BASE).netloc


class Session:
    def __init__(self):
        self.conn = http.client.HTTPConnection(HOST, timeout=30)
        self.cookies = {}

    def request(self, method, path, body=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return response.status, response.headers, text

    def sign_in(self, key):
        _, _, form = self.request("GET", "/console/login")
        csrf = re.search(r'name="_csrf" value="([^"]+)"', form).group(1)
        status, _, _ = self.request("POST", "/console/login",
                                    urllib.parse.urlencode({"_csrf": csrf, "key": key}))
        assert status == 303, f"sign-in answered {status}"

    def time(self, path):
        times = []
        for _ in range(FETCHES):
            start = time.perf_counter()
            status, _, body = self.request("GET", path)
            times.append((time.perf_counter() - start) * 1000)
            assert status == 200, f"{path}: {status} {body[:300]}"
        return body, statistics.median(times), max(times)


def main():
    results = []
    tenant = Session()
    tenant.sign_in(TENANT_KEY)
    body, *_ = tenant.time("/console/emails")
    body = html.unescape(body)
    first = re.search(r'data-email="([^"]+)"', body).group(1)
    older = re.search(r'href="/console/emails\?([^"]*after=[^"]+)"', body).group(1)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    for path in ["/console/emails", f"/console/emails?{older}", "/console/emails?status=delivered",
                 "/console/emails?status=bounced", "/console/emails?tag=kind%3Anone",
                 f"/console/emails?since={today}", f"/console/emails/{first}",
                 "/console/templates", "/console/webhooks", "/console/domains", "/console/usage"]:
        _, median, slowest = tenant.time(path)
        results.append({"page": path, "median_ms": round(median, 1), "max_ms": round(slowest, 1)})
    operator = Session()
    operator.sign_in(ADMIN_KEY)
    body, *_ = operator.time("/console/operator")
    tenant_page = re.search(r'href="(/console/operator/tenants/[^"]+)"', body).group(1)
    for path in ["/console/operator", tenant_page]:
        _, median, slowest = operator.time(path)
        results.append({"page": path, "median_ms": round(median, 1), "max_ms": round(slowest, 1)})
    for row in results:
        print(json.dumps(row))
    worst = max(r["max_ms"] for r in results)
    print(f"slowest page fetch: {worst} ms (target: every page under 200 ms)")


if __name__ == "__main__":
    main()
