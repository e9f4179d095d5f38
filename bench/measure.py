#!/usr/bin/env python3
"""Measurements and the report for the benchmark scripts (standard library only).

    measure.py cpu PID                 CPU seconds of PID and its children, reaped ones included
    measure.py rss PID                 resident memory of PID now (VmRSS), in MiB
    measure.py hwm PID                 the most PID was ever resident (VmHWM), in MiB
    measure.py pss PID                 proportional memory of PID's process tree, in MiB
    measure.py criterion               criterion's output on stdin as JSON lines
    measure.py report RESULTS DOC      median/spread table from RESULTS (JSON lines) into DOC

Missive is one process, so its RSS and the kernel's high-water mark (exact, no sampling) say it
all. Postgres is many processes sharing their buffers, so it is measured as the sum of their PSS
(proportional set size), where shared buffers count once rather than once per backend; that walk
over every backend's page tables is costly, so the scripts take it between runs rather than by
polling (polling it four times a second doubled the p50 of the latency runs and took p99 from
5-17 ms to 24 ms).
"""
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces; fields start after its closing parenthesis.
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    """utime+stime of the tree, plus what reaped children left in cutime/cstime."""
    try:
        fields = stat_fields(pid)
    except OSError:
        return 0.0
    own = sum(int(x) for x in fields[11:15]) / TICK
    return own + sum(cpu_seconds(child) for child in children(pid))


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            match = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
            own = int(match.group(1)) if match else 0
    except OSError:
        own = 0
    return own + sum(pss_kib(child) for child in children(pid))


def status_mib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    return int(match.group(1)) / 1024


def criterion(lines):
    """`name time: [low estimate high]`, the name sometimes on the line before."""
    name = None
    for line in lines:
        match = re.match(r"^(.*?)\s*time:\s+\[(\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\]", line)
        if not match:
            if line.strip() and not line.startswith(" "):
                name = line.strip()
            continue
        label = match.group(1).strip() or name
        print(json.dumps({"scenario": "criterion", "name": label,
                          "estimate": f"{match.group(4)} {match.group(5)}"}))


def fmt(value, digits=0):
    return f"{value:,.{digits}f}"


def summary(values, digits=0, unit=""):
    """'median unit (min–max)' for three or more runs, or the single value."""
    med = statistics.median(values)
    if len(values) == 1:
        return f"{fmt(med, digits)}{unit}"
    return f"{fmt(med, digits)}{unit} ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def machine():
    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 1024 / 1024
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    distro = "unknown"
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    pg = os.environ.get("BENCH_PG_VERSION", "unknown")
    return (
        f"{os.cpu_count()} cores ({model}), {mem_gib:.0f} GiB, {distro}, Linux {platform.release()}, "
        f"{run('rustc', '--version')}, PostgreSQL {pg}"
    )


def col_of(rows, key):
    return [r[key] for r in rows]


def met(ok):
    return "**yes**" if ok else "**no**"


def report(results_path, doc_path):
    with open(results_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    by = {}
    for row in rows:
        by.setdefault(row["scenario"], []).append(row)

    def col(scenario, key):
        return [r[key] for r in by.get(scenario, [])]

    def cpu(scenario, first="missive_cpu_us"):
        """'Missive-or-dispatcher µs / Postgres µs' of a scenario's runs."""
        return (f"{summary(col(scenario, first), unit=' µs')} / "
                f"{summary(col(scenario, 'pg_cpu_us'), unit=' µs')}")

    def of_direct(scenario, key):
        """Each run's figure over the direct run's of the same repeat (the runs take turns)."""
        return [s / d for s, d in zip(col(scenario, key), col("accept", key))]

    lines = [
        f"Machine: {machine()}.",
        "",
        f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; each figure is the median of "
        f"{len(by.get('accept', [])) or 1} runs with the lowest and highest in brackets.",
        "",
        "| scenario | measured | target | met |",
        "| --- | --- | --- | --- |",
    ]
    if "accept" in by:
        rate = col("accept", "per_second")
        e2e = col("accept", "e2e_per_second")
        total = by["accept"][0]["total"]
        clients = by["accept"][0]["clients"]
        lines += [
            f"| REST accept, {clients} clients, {total:,} emails (worker running) | "
            f"{summary(rate, unit='/s')}; p50 {summary(col('accept', 'p50_ms'), 1, ' ms')}, "
            f"p99 {summary(col('accept', 'p99_ms'), 1, ' ms')}; errors {sum(col('accept', 'errors'))} | "
            f"≥ 3,000/s | {met(statistics.median(rate) >= 3000)} |",
            f"| REST end to end to the sink | {summary(e2e, unit='/s')} | ≥ 1,500/s | "
            f"{met(statistics.median(e2e) >= 1500)} |",
            f"| CPU per accepted email: Missive / Postgres | "
            f"{cpu('accept')} | | |",
        ]
    if "accept" in by and "templated" in by:
        templated = col("templated", "per_second")
        ratio, missive = of_direct("templated", "per_second"), of_direct("templated", "missive_cpu_us")
        lines += [
            f"| REST accept through a published template rendering the same body | "
            f"{summary(templated, unit='/s')}; errors {sum(col('templated', 'errors'))}; "
            f"{summary(ratio, 2, '×')} of direct | ≥ 0.90× | {met(statistics.median(ratio) >= 0.9)} |",
            f"| CPU per templated email: Missive / Postgres | "
            f"{cpu('templated')}; Missive "
            f"{summary(missive, 2, '×')} of direct | | |",
        ]
    if "accept" in by and "webhooks_outbox" in by:
        queued, ratio = col("webhooks_outbox", "per_second"), of_direct("webhooks_outbox", "per_second")
        missive = of_direct("webhooks_outbox", "missive_cpu_us")
        pg = of_direct("webhooks_outbox", "pg_cpu_us")
        lines += [
            f"| REST accept, one webhook endpoint subscribed to every type (its outbox rows written "
            f"at accept and at delivery; no dispatcher running) | {summary(queued, unit='/s')}; "
            f"errors {sum(col('webhooks_outbox', 'errors'))}; {summary(ratio, 2, '×')} of direct | "
            f"≥ 0.85× | {met(statistics.median(ratio) >= 0.85)} |",
            f"| CPU per email, outbox rows written: Missive / Postgres | "
            f"{cpu('webhooks_outbox')}; "
            f"{summary(missive, 2, '×')} / {summary(pg, 2, '×')} of direct | | |",
        ]
    if "accept" in by and "webhooks" in by:
        hooked, ratio = col("webhooks", "per_second"), of_direct("webhooks", "per_second")
        lines += [
            f"| REST accept, the same with a dispatcher posting both events of every email "
            f"meanwhile on the same two cores | {summary(hooked, unit='/s')}; errors "
            f"{sum(col('webhooks', 'errors'))}; {summary(ratio, 2, '×')} of direct | | |",
            f"| REST end to end with webhooks: the sink holds every email and the receiver has "
            f"verified its `email.sent` and `email.delivered` | "
            f"{summary(col('webhooks', 'e2e_per_second'), unit=' emails/s')} | | |",
            f"| CPU per email with webhooks (accept, delivery, two signed posts): Missive / "
            f"Postgres | {summary(col('webhooks', 'missive_cpu_us'), unit=' µs')} / "
            f"{summary(col('webhooks', 'pg_cpu_us'), unit=' µs')} | | |",
        ]
    if "webhook_drain" in by:
        rate = col("webhook_drain", "per_second")
        posts = by["webhook_drain"][0]["posts"]
        lines += [
            f"| Signed webhook deliveries, a dispatcher alone on a backlog of {posts:,} events to "
            f"one local endpoint (every signature verified) | {summary(rate, unit='/s')} | "
            f"≥ 2,000/s | {met(statistics.median(rate) >= 2000)} |",
            f"| CPU per webhook delivery: dispatcher / Postgres | "
            f"{cpu('webhook_drain', 'dispatcher_cpu_us')} | | |",
        ]
    if "latency" in by:
        p99 = col("latency", "p99_ms")
        rate = by["latency"][0]["rate"]
        lines.append(
            f"| REST latency at {rate} req/s | p50 {summary(col('latency', 'p50_ms'), 1, ' ms')}, "
            f"p99 {summary(p99, 1, ' ms')}; errors {sum(col('latency', 'errors'))} | p99 < 25 ms | "
            f"{met(statistics.median(p99) < 25)} |"
        )
    if "read" in by:
        reads = by["read"][0]
        lines += [
            f"| Tenant reads, `GET /v1/emails/{{id}}` under row-level security, {reads['requests']:,} "
            f"from {reads['clients']} clients | {summary(col('read', 'per_second'), unit='/s')}; "
            f"p99 {summary(col('read', 'p99_ms'), 1, ' ms')}; errors {sum(col('read', 'errors'))} | | |",
            f"| CPU per read: Missive / Postgres | {cpu('read')} | | |",
        ]
    if "mx" in by:
        mx = by["mx"][0]
        rate = col("mx", "per_second")
        lines += [
            f"| Delivery reports into the inbound MX, {mx['reports']:,} from {mx['clients']} "
            f"connections (each authenticated, parsed and recorded as an event) | "
            f"{summary(rate, unit='/s')}; p99 {summary(col('mx', 'p99_ms'), 1, ' ms')}; errors "
            f"{sum(col('mx', 'errors'))} | ≥ 1,000/s | {met(statistics.median(rate) >= 1000)} |",
            f"| CPU per report: Missive / Postgres | {cpu('mx')} | | |",
        ]
    if "receiving" in by:
        def received(target, key):
            return [r[key] for r in by["receiving"] if r["target"] == target]

        total = by["receiving"][0]["total"]
        ours = received("missive", "accept_per_second")
        lines += [
            f"| Receiving: smtp-source 20 sessions × 10 KB × {total:,} to a tenant's receiving "
            f"domain on the MX (SPF and DMARC checked, stored whole before each 250) | "
            f"{summary(ours, unit='/s')} | ≥ 1,000/s | {met(statistics.median(ours) >= 1000)} |",
            f"| CPU per received message: Missive / Postgres | "
            f"{summary(received('missive', 'missive_cpu_us'), unit=' µs')} / "
            f"{summary(received('missive', 'pg_cpu_us'), unit=' µs')} | | |",
        ]
        theirs = received("postfix", "e2e_per_second")
        if theirs:
            ratio = [a / b for a, b in zip(ours, theirs)]
            lines.append(
                f"| The same into a stock Postfix delivering to a local mailbox (virtual(8), one "
                f"Maildir) | accepted {summary(received('postfix', 'accept_per_second'), unit='/s')}, "
                f"in the mailbox {summary(theirs, unit='/s')}; Postfix CPU per message "
                f"{summary(received('postfix', 'postfix_cpu_us'), unit=' µs')}; Missive stored ÷ "
                f"Postfix in the mailbox {summary(ratio, 2, '×')} | | |"
            )
    if "smtp" in by:
        def rates(target, key):
            return [r[key] for r in by["smtp"] if r["target"] == target]

        def smtp_rows(suffix, scenario, target, cpu_label):
            """Accept and end-to-end rows of Missive's runs `missive{suffix}` against Postfix's
            of the same repeats, then Missive's CPU per message."""
            for key, label in (("accept_per_second", "accept"), ("e2e_per_second", "end to end")):
                ours, theirs = rates("missive" + suffix, key), rates("postfix" + suffix, key)
                ratio = [a / b for a, b in zip(ours, theirs)]
                verdict = f"≥ {target}× | {met(statistics.median(ratio) >= target)}" if target else " |"
                lines.append(
                    f"| SMTP {label}, {scenario} | Missive {summary(ours, unit='/s')}, Postfix "
                    f"{summary(theirs, unit='/s')}; ratio {summary(ratio, 2, '×')} | {verdict} |"
                )
            lines.append(
                f"| {cpu_label}: Missive / Postgres | "
                f"{summary(rates('missive' + suffix, 'missive_cpu_us'), unit=' µs')} / "
                f"{summary(rates('missive' + suffix, 'pg_cpu_us'), unit=' µs')} | | |"
            )

        total = by["smtp"][0]["total"]
        smtp_rows("", f"smtp-source 20 sessions × 2 KB × {total:,}: Missive vs stock Postfix "
                  "(same sink, same run)", 3, "CPU per SMTP message")
        if rates("missive_full", "accept_per_second"):
            smtp_rows("_full", "the same with DKIM (RSA 2048), a quota and a webhook endpoint for "
                      "every event type: Missive vs Postfix", None,
                      "CPU per SMTP message with those features (Missive includes its dispatcher)")
    fair = {}
    for r in by.get("fairness", []):
        fair.setdefault(r["phase"], []).append(r)
    if "idle" in fair and "backlog" in fair:
        idle, busy = fair["idle"], fair["backlog"]

        def pct(rows, key):
            return summary([r[key] for r in rows], 1, " ms")

        idle_p99 = statistics.median(r["p99_ms"] for r in idle)
        busy_p99 = statistics.median(r["p99_ms"] for r in busy)
        ratio = busy_p99 / idle_p99 if idle_p99 else float("inf")
        runs = f"{len(idle)} runs" if len(idle) > 1 else "1 run"
        lines += [
            f"| Tenant B, {idle[0]['emails']:,} emails at a steady rate through the shared relay, "
            f"accept to delivery, on an otherwise idle system ({runs}, each a new tenant) | "
            f"p50 {pct(idle, 'p50_ms')}, p99 {pct(idle, 'p99_ms')} | | |",
            f"| The same while tenant A has a backlog of {busy[0]['a_backlog']:,} emails towards "
            f"its own server (50 ms per message, 2 connections) | p50 {pct(busy, 'p50_ms')}, "
            f"p99 {pct(busy, 'p99_ms')}; median p99 {fmt(ratio, 2)}× B's idle median p99 | "
            f"≤ 2× | {met(ratio <= 2)} |",
        ]
    features = {}
    for r in by.get("features", []):
        features.setdefault((r["build"], r["run"]), []).append(r)

    def total_cpu(rows):
        return [r["missive_cpu_us"] + r["pg_cpu_us"] for r in rows]

    first = os.environ.get("BENCH_BASELINE_REV", "the baseline")
    if ("one", "full") in features:
        full = features[("one", "full")]
        n = full[0]["total"]
        lines.append(
            f"| Full features (template, DKIM, quota, 1% suppressed, webhooks), REST, {n:,} "
            f"emails, accept through delivery and its webhooks: CPU per email, Missive + Postgres | "
            f"{summary(total_cpu(full), unit=' µs')} | | |"
        )
        if ("first", "full") in features:
            ratio = [a / b for a, b in zip(total_cpu(full), total_cpu(features[("first", "full")]))]
            lines.append(
                f"| The same against the first full-features build ({first}), runs taking turns | "
                f"{summary(total_cpu(features[('first', 'full')]), unit=' µs')} then; ratio "
                f"{summary(ratio, 2, '×')} | ≤ 0.67× | {met(statistics.median(ratio) <= 0.67)} |"
            )
        if ("two", "full") in features:
            ratio = [a / b for a, b in zip(total_cpu(features[("two", "full")]), total_cpu(full))]
            lines.append(
                f"| The same by two processes (api+smtp, worker+webhooks) on one Postgres; every "
                f"email delivered once | {summary(total_cpu(features[('two', 'full')]), unit=' µs')}; "
                f"{summary(ratio, 2, '×')} of one process | | |"
            )
    for row in by.get("criterion", []):
        lines.append(f"| {row['name']} (criterion, quick mode) | {row['estimate']} per call | | |")
    if "memory" in by:
        mem = by["memory"][0]
        lines += [
            f"| Missive memory idle (RSS) | {fmt(mem['missive_idle_mib'], 1)} MiB | < 50 MiB | "
            f"{met(mem['missive_idle_mib'] < 50)} |",
            f"| Missive peak memory over all scenarios (RSS high-water mark) | {fmt(mem['missive_peak_mib'], 1)} MiB | "
            f"< 300 MiB | {met(mem['missive_peak_mib'] < 300)} |",
            f"| Postgres memory, all processes (PSS, largest after a run) | {fmt(mem['pg_peak_mib'], 1)} MiB | | |",
        ]
        if "features_peak_mib" in mem:
            lines.append(
                f"| Missive peak memory with full features (one process, every role; two processes: "
                f"the larger) | {fmt(mem['features_peak_mib'], 1)} MiB; "
                f"{fmt(mem['features_two_peak_mib'], 1)} MiB | < 300 MiB | "
                f"{met(max(mem['features_peak_mib'], mem['features_two_peak_mib']) < 300)} |"
            )
    if features:
        plain = features.get(("one", "plain"))
        lines += [
            "",
            "Each feature's own cost: CPU per email with it alone, and over plain (medians).",
            "",
            "| run | accept | Missive µs | Postgres µs | Missive + Postgres | over plain: Missive / Postgres |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        names = {"one": "", "two": ", two processes", "first": f", first build ({first})"}
        runs = ["plain", "template", "dkim", "quota", "suppress", "webhooks", "full"]

        def order(item):
            (build, run), _ = item
            return (list(names).index(build), runs.index(run) if run in runs else len(runs), run)

        for (build, run), rows in sorted(features.items(), key=order):
            m = statistics.median(col_of(rows, "missive_cpu_us"))
            p = statistics.median(col_of(rows, "pg_cpu_us"))
            over = ""
            if plain and build == "one" and run != "plain":
                over = (f"+{fmt(m - statistics.median(col_of(plain, 'missive_cpu_us')))} / "
                        f"+{fmt(p - statistics.median(col_of(plain, 'pg_cpu_us')))}")
            lines.append(
                f"| {run}{names[build]} | {summary(col_of(rows, 'per_second'), unit='/s')} | "
                f"{summary(col_of(rows, 'missive_cpu_us'))} | {summary(col_of(rows, 'pg_cpu_us'))} | "
                f"{fmt(m + p)} | {over.replace('+-', '−')} |"
            )

    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    block = start + "\n" + "\n".join(lines) + "\n" + end
    doc = open(doc_path).read() if os.path.exists(doc_path) else "# Benchmarks\n\n"
    if start in doc and end in doc:
        doc = doc[: doc.index(start)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    with open(doc_path, "w") as f:
        f.write(doc)
    print("\n".join(lines))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "cpu":
        print(f"{cpu_seconds(int(args[0])):.3f}")
    elif cmd == "rss":
        print(f"{status_mib(int(args[0]), 'VmRSS'):.1f}")
    elif cmd == "hwm":
        print(f"{status_mib(int(args[0]), 'VmHWM'):.1f}")
    elif cmd == "pss":
        print(f"{pss_kib(int(args[0])) / 1024:.1f}")
    elif cmd == "criterion":
        criterion(sys.stdin)
    elif cmd == "report":
        report(args[0], args[1])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
