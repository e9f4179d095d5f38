"""Tests of the benchmark report (`measure.py report`) and its criterion parser; run by `make test`."""
import io
import json
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(__file__))
import measure  # noqa: E402


def rows_for(accept_rates, smtp_pairs):
    rows = [{"scenario": "accept", "per_second": r, "e2e_per_second": r * 0.9, "p50_ms": 9.0,
             "p99_ms": 30.0, "errors": 0, "total": 20000, "clients": 32, "missive_cpu_us": 140,
             "pg_cpu_us": 400} for r in accept_rates]
    rows += [{"scenario": "templated", "per_second": r * 0.95, "e2e_per_second": r * 0.9,
              "p50_ms": 9.0, "p99_ms": 30.0, "errors": 0, "total": 20000, "clients": 32,
              "missive_cpu_us": 154, "pg_cpu_us": 400} for r in accept_rates]
    # With an endpoint: 90%, 80% and 88% of the direct run of the same repeat.
    rows += [{"scenario": "webhooks_outbox", "per_second": r * share, "e2e_per_second": r * 0.8,
              "p50_ms": 9.0, "p99_ms": 30.0, "errors": 0, "total": 20000, "clients": 32,
              "missive_cpu_us": 154, "pg_cpu_us": 480}
             for r, share in zip(accept_rates, (0.9, 0.8, 0.88))]
    rows += [{"scenario": "webhooks", "per_second": r * 0.6, "e2e_per_second": r * 0.4,
              "p50_ms": 9.0, "p99_ms": 30.0, "errors": 0, "total": 20000, "clients": 32,
              "missive_cpu_us": 400, "pg_cpu_us": 1200} for r in accept_rates]
    rows += [{"scenario": "webhook_drain", "posts": 40000, "per_second": rate,
              "dispatcher_cpu_us": 130, "pg_cpu_us": 340} for rate in (2700, 1900, 2900)]
    rows += [{"scenario": "latency", "rate": 500, "p50_ms": 1.0, "p99_ms": p, "errors": 0}
             for p in (9.0, 30.0, 12.0)]
    rows += [{"scenario": "read", "requests": 20000, "clients": 32, "per_second": rate,
              "p50_ms": 5.0, "p99_ms": 20.0, "errors": 0, "missive_cpu_us": 90, "pg_cpu_us": cpu}
             for rate, cpu in ((4000, 160), (3600, 180), (4200, 150))]
    for ours, theirs in smtp_pairs:
        for target, rate in (("missive", ours), ("postfix", theirs)):
            rows.append({"scenario": "smtp", "target": target, "total": 20000,
                         "accept_per_second": rate, "e2e_per_second": rate,
                         "missive_cpu_us": 250, "pg_cpu_us": 500})
    rows.append({"scenario": "memory", "missive_idle_mib": 14.6, "missive_peak_mib": 320.0,
                 "pg_peak_mib": 450.0})
    rows.append({"scenario": "criterion", "name": "mime: html + text", "estimate": "3.2 µs"})
    return rows


class Report(unittest.TestCase):
    def render(self, rows, doc):
        with tempfile.TemporaryDirectory() as tmp:
            results, doc_path = os.path.join(tmp, "results.jsonl"), os.path.join(tmp, "doc.md")
            with open(results, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            with open(doc_path, "w") as f:
                f.write(doc)
            measure.report(results, doc_path)
            with open(doc_path) as f:
                return f.read()

    def row(self, text, label):
        return next(line for line in text.splitlines() if line.startswith(f"| {label}"))

    def test_the_table_replaces_only_what_lies_between_the_markers(self):
        doc = "# Benchmarks\n\nintro\n\n<!-- bench:start -->\nold table\n<!-- bench:end -->\n\nprose\n"
        text = self.render(rows_for([3100, 2900, 3200], [(1800, 900)] * 3), doc)
        self.assertTrue(text.startswith("# Benchmarks\n\nintro\n\n<!-- bench:start -->\n"))
        self.assertTrue(text.endswith("<!-- bench:end -->\n\nprose\n"))
        self.assertNotIn("old table", text)

    def test_medians_spreads_and_verdicts(self):
        text = self.render(rows_for([3100, 2900, 3200], [(2700, 900), (2550, 1000), (2850, 850)]), "")
        accept = self.row(text, "REST accept")
        self.assertIn("3,100/s (2,900–3,200)", accept)
        self.assertTrue(accept.endswith("| ≥ 3,000/s | **yes** |"), accept)
        # Templated runs are paired with the direct ones: 95% of each, so 0.95× and met.
        templated = self.row(text, "REST accept through a published template")
        self.assertIn("0.95× (0.95–0.95) of direct | ≥ 0.90× | **yes** |", templated)
        self.assertIn("Missive 1.10× (1.10–1.10) of direct", self.row(text, "CPU per templated"))
        # The median p99 of 9, 30 and 12 ms is 12: met, though one run was over.
        self.assertTrue(self.row(text, "REST latency").endswith("| p99 < 25 ms | **yes** |"))
        reads = self.row(text, "Tenant reads")
        self.assertIn("20,000 from 32 clients | 4,000/s (3,600–4,200)", reads)
        self.assertIn("90 µs (90–90) / 160 µs (150–180)", self.row(text, "CPU per read"))
        # The ratio is taken per repeat (3.00, 2.55, 3.35), then its median: met at exactly 3.
        smtp = self.row(text, "SMTP accept")
        self.assertIn("ratio 3.00× (2.55–3.35)", smtp)
        self.assertTrue(smtp.endswith("| ≥ 3× | **yes** |"), smtp)
        self.assertTrue(self.row(text, "Missive memory idle").endswith("**yes** |"))
        self.assertTrue(self.row(text, "Missive peak memory").endswith("| < 300 MiB | **no** |"))
        self.assertIn("| mime: html + text (criterion, quick mode) | 3.2 µs per call |", text)

    def test_webhook_rows_pair_each_run_with_the_direct_one_of_its_repeat(self):
        text = self.render(rows_for([3100, 2900, 3200], [(1800, 900)] * 3), "")
        hooked = self.row(text, "REST accept, one webhook endpoint")
        # Per repeat 0.90, 0.80, 0.88: the median 0.88 meets 0.85 though one run did not.
        self.assertIn("0.88× (0.80–0.90) of direct | ≥ 0.85× | **yes** |", hooked)
        self.assertIn("1.10× (1.10–1.10) / 1.20× (1.20–1.20) of direct",
                      self.row(text, "CPU per email, outbox rows written"))
        concurrent = self.row(text, "REST accept, the same with a dispatcher")
        self.assertIn("0.60× (0.60–0.60) of direct | | |", concurrent)
        drain = self.row(text, "Signed webhook deliveries")
        self.assertIn("backlog of 40,000 events", drain)
        self.assertTrue(drain.endswith("| 2,700/s (1,900–2,900) | ≥ 2,000/s | **yes** |"), drain)
        self.assertIn("130 µs (130–130) / 340 µs", self.row(text, "CPU per webhook delivery"))

    def test_receiving_pairs_missive_with_postfix_delivering_to_a_mailbox(self):
        rows = rows_for([3100, 2900, 3200], [(1800, 900)] * 3)
        for rate, theirs in [(1200, 600), (900, 600), (1300, 500)]:
            rows.append({"scenario": "receiving", "target": "missive", "total": 20000,
                         "accept_per_second": rate, "e2e_per_second": rate,
                         "missive_cpu_us": 400, "pg_cpu_us": 300, "postfix_cpu_us": 0})
            rows.append({"scenario": "receiving", "target": "postfix", "total": 20000,
                         "accept_per_second": theirs * 2, "e2e_per_second": theirs,
                         "missive_cpu_us": 0, "pg_cpu_us": 0, "postfix_cpu_us": 700})
        text = self.render(rows, "")
        ours = self.row(text, "Receiving")
        self.assertIn("× 20,000", ours)
        self.assertTrue(ours.endswith("| 1,200/s (900–1,300) | ≥ 1,000/s | **yes** |"), ours)
        self.assertIn("400 µs (400–400) / 300 µs", self.row(text, "CPU per received message"))
        postfix = self.row(text, "The same into a stock Postfix")
        # Per repeat 2.00, 1.50, 2.60: the median ratio is 2.00.
        self.assertIn("in the mailbox 600/s (500–600)", postfix)
        self.assertIn("2.00× (1.50–2.60)", postfix)

    def test_fairness_compares_b_under_a_backlog_with_b_alone(self):
        rows = rows_for([3100, 2900, 3200], [(1800, 900)] * 3)
        rows += [{"scenario": "fairness", "phase": "idle", "emails": 400, "p50_ms": 9.0,
                  "p99_ms": 20.0, "max_ms": 30.0, "a_backlog": 0},
                 {"scenario": "fairness", "phase": "backlog", "emails": 400, "p50_ms": 12.0,
                  "p99_ms": 44.0, "max_ms": 60.0, "a_backlog": 99000}]
        text = self.render(rows, "")
        self.assertIn("p99 20.0 ms", self.row(text, "Tenant B"))
        busy = self.row(text, "The same while tenant A has a backlog of 99,000")
        self.assertTrue(busy.endswith("2.20× B's idle median p99 | ≤ 2× | **no** |"), busy)

    def test_fairness_compares_the_medians_of_repeated_phases(self):
        rows = rows_for([3100, 2900, 3200], [(1800, 900)] * 3)
        for phase, p99s in (("idle", [8.0, 10.0, 30.0]), ("backlog", [12.0, 45.0, 15.0])):
            rows += [{"scenario": "fairness", "phase": phase, "emails": 400, "p50_ms": 4.0,
                      "p99_ms": p99, "max_ms": 50.0, "a_backlog": 98000 if phase == "backlog" else 0}
                     for p99 in p99s]
        text = self.render(rows, "")
        self.assertIn("(3 runs, each a new tenant)", self.row(text, "Tenant B"))
        self.assertIn("p99 10.0 ms (8.0–30.0)", self.row(text, "Tenant B"))
        busy = self.row(text, "The same while tenant A has a backlog of 98,000")
        self.assertIn("p99 15.0 ms (12.0–45.0)", busy)
        self.assertTrue(busy.endswith("1.50× B's idle median p99 | ≤ 2× | **yes** |"), busy)

    def test_a_target_missed_by_the_median_says_no(self):
        text = self.render(rows_for([2990, 3500, 2800], [(1700, 900)] * 3), "")
        self.assertTrue(self.row(text, "REST accept").endswith("| ≥ 3,000/s | **no** |"))
        self.assertTrue(self.row(text, "SMTP accept").endswith("| ≥ 3× | **no** |"))


    def test_full_features_against_the_first_build_and_each_features_own_cost(self):
        rows = rows_for([3100, 2900, 3200], [(2700, 900)] * 3)

        def run(build, name, missive, pg):
            return {"scenario": "features", "build": build, "run": name, "total": 10000,
                    "per_second": 1000, "errors": 0, "missive_cpu_us": missive, "pg_cpu_us": pg}
        # Per repeat: full 2,000 / 3,000, 2,400 / 3,000 and 2,100 / 3,300 of the first build's.
        for full, first in ((2000, 3000), (2400, 3000), (2100, 3300)):
            # In make bench's order: the full runs first, then each feature alone.
            rows += [run("first", "full", first - 1500, 1500), run("two", "full", full - 900, 1000),
                     run("one", "full", full - 1000, 1000), run("one", "plain", 200, 500),
                     run("one", "dkim", 1000, 550)]
        for target in ("missive_full", "postfix_full"):
            rows.append({"scenario": "smtp", "target": target, "total": 20000,
                         "accept_per_second": 1800 if target == "missive_full" else 900,
                         "e2e_per_second": 900, "missive_cpu_us": 900, "pg_cpu_us": 700})
        for r in rows:
            if r["scenario"] == "memory":
                r.update(features_peak_mib=120.0, features_two_peak_mib=80.0)
        text = self.render(rows, "")
        self.assertIn("| 2,100 µs (2,000–2,400) | | |", self.row(text, "Full features"))
        # 0.67, 0.80 and 0.64: the median 0.67 meets the target.
        first = self.row(text, "The same against the first full-features build")
        self.assertIn("ratio 0.67× (0.64–0.80) | ≤ 0.67× | **yes** |", first)
        self.assertIn("1.05× (1.04–1.05) of one process", self.row(text, "The same by two processes"))
        self.assertIn("ratio 2.00×", self.row(text, "SMTP accept, the same with DKIM"))
        self.assertTrue(self.row(text, "Missive peak memory with full features").endswith(
            "| 120.0 MiB; 80.0 MiB | < 300 MiB | **yes** |"))
        # Each feature over plain, from the medians.
        self.assertIn("| 1,550 | +800 / +50 |", self.row(text, "dkim"))
        self.assertTrue(self.row(text, "plain |").endswith("| 700 |  |"))
        # Listed by build, then plain first and full last.
        listed = [line.split(" | ")[0] for line in text.splitlines()
                  if line.startswith(("| plain", "| dkim", "| full"))]
        self.assertEqual(listed, ["| plain", "| dkim", "| full", "| full, two processes",
                                  "| full, first build (the baseline)"])


class Criterion(unittest.TestCase):
    def test_names_on_the_same_line_or_the_line_before(self):
        output = [
            "address: ascii mailbox with display name\n",
            "                        time:   [407.10 ns 408.00 ns 409.20 ns]\n",
            "mime: html + text       time:   [3.2000 µs 3.2456 µs 3.3000 µs]\n",
            "Found 2 outliers among 100 measurements (2.00%)\n",
        ]
        out = io.StringIO()
        with redirect_stdout(out):
            measure.criterion(output)
        rows = [json.loads(line) for line in out.getvalue().splitlines()]
        self.assertEqual(rows, [
            {"scenario": "criterion", "name": "address: ascii mailbox with display name",
             "estimate": "408.00 ns"},
            {"scenario": "criterion", "name": "mime: html + text", "estimate": "3.2456 µs"},
        ])


if __name__ == "__main__":
    unittest.main()
