#!/usr/bin/env python3
"""Seconds per round, updates per second, peak device memory and paging of
fedsp runs, as a markdown table (scripts/device-check.sh: the FedSP round at
GPT-2 XL's scale and the paging runs of scenarios/gpu/).

  device_runs.py LABEL=RUN_DIR[:PEAK_FILE] ...

Round times come from the `publish` events' wall clock: round 1 is from the
`prepared` event (the model shipped, sessions built) to the first publish,
round r > 1 from publish r-1 to publish r. Updates per second count the
updates of rounds 2 and later over their time, so set-up and the first
round's warm-up stay out. PEAK_FILE holds scripts/peak-device-mb.sh's
figure for the run.
"""
import json
import os
import sys


def summarise(label, run, peak_file):
    events = [json.loads(line) for line in open(os.path.join(run, "events.jsonl"))]
    summary = json.load(open(os.path.join(run, "summary.json")))
    prepared = next(e["wall_elapsed_s"] for e in events if e["type"] == "prepared")
    publish = [e for e in events if e["type"] == "publish"]
    if not publish:
        raise SystemExit(f"{run}: no version was published")
    times, last = [], prepared
    for e in publish:
        times.append(e["wall_elapsed_s"] - last)
        last = e["wall_elapsed_s"]
    later = publish[1:]
    updates = sum(len(e["updates"]) for e in later)
    per_s = updates / sum(times[1:]) if later else float("nan")
    compute = summary.get("compute", {})
    paging = compute.get("paging")
    paged = (f"{paging['page_ins']} in / {paging['evictions']} out, "
             f"{paging['page_in_seconds']:.2f} s in, "
             f"{paging.get('prefetched', 0)} ahead ({paging.get('prefetch_seconds', 0):.2f} s)"
             if paging else "no budget")
    peak = open(peak_file).read().strip() if peak_file and os.path.exists(peak_file) else "-"
    p = summary["parameters"]
    return (f"| {label} | {', '.join(compute.get('devices', ['?']))}, {compute.get('dtype', '?')} | "
            f"{p['global']:,} | {p['auxiliary']:,} | {summary['clients']} | "
            f"{' / '.join(f'{t:.1f}' for t in times)} | {per_s:.2f} | {paged} | {peak} | "
            f"{summary['peak_rss_mb']:.0f} |")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print("| run | device, dtype | global params | auxiliary params | clients | "
          "s per round (1 / 2 / ...) | updates/s (rounds 2+) | paging | peak device MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        label, _, rest = arg.partition("=")
        run, _, peak = rest.partition(":")
        print(summarise(label, run, peak))


if __name__ == "__main__":
    main()
