"""Prints run-training.sh's side-by-side table from JSON lines of torch_lora_train.py and TrainingThroughput.

Reads the files named as arguments, or stdin without any; one JSON object a line, blank lines skipped.
Records are grouped by (arch, batch, seq); of several runs of one implementation the fastest is shown,
so noise on a shared machine never lowers either figure, and the peak RSS is the largest seen.
"""
import json
import sys

IMPLS = ("loraflow", "pytorch")
FIELDS = ("impl", "arch", "batch", "seq", "tokens_per_s", "step_ms_median", "peak_rss_mb")


def read_records(sources):
    records = []
    for name, lines in sources:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = "%s:%d" % (name, number)
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise SystemExit("training_report: %s is not JSON (%s): %r" % (where, error, line[:80]))
            missing = [field for field in FIELDS if field not in record]
            if missing:
                raise SystemExit("training_report: %s lacks %s" % (where, ", ".join(missing)))
            if record["impl"] not in IMPLS:
                raise SystemExit("training_report: %s has impl %r, expected one of %s" % (where, record["impl"], IMPLS))
            records.append(record)
    return records


def summarise(runs):
    fastest = max(runs, key=lambda run: run["tokens_per_s"])
    return {
        "tokens_per_s": fastest["tokens_per_s"],
        "step_ms_median": fastest["step_ms_median"],
        # Throughput per CPU second (older records lack it): the comparison a busy machine leaves intact.
        "tokens_per_cpu_s": max((run.get("tokens_per_cpu_s", float("nan")) for run in runs), default=float("nan")),
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
        "runs": len(runs),
        # Whatever else a record says about itself (torch's version, ...), as key=value.
        "extra": " ".join("%s=%s" % (key, value) for key, value in fastest.items() if key not in FIELDS + ("tokens_per_cpu_s",)),
    }


def main(paths):
    if paths:
        sources = [(path, open(path).read().splitlines()) for path in paths]
    else:
        sources = [("<stdin>", sys.stdin.read().splitlines())]
    records = read_records(sources)
    if not records:
        raise SystemExit("training_report: no records in %s" % (", ".join(paths) or "stdin"))
    groups = {}
    for record in records:
        groups.setdefault((record["arch"], record["batch"], record["seq"]), []).append(record)
    for index, ((arch, batch, seq), group) in enumerate(sorted(groups.items())):
        if index:
            print()
        print("%s, batch %d, seq %d (%d tokens a step)" % (arch, batch, seq, batch * seq))
        print("  %-9s %10s %14s %12s %13s %5s" % ("impl", "tokens/s", "step ms (med)", "tokens/CPU s", "peak RSS MB",
                                                  "runs"))
        summaries = {}
        for impl in IMPLS:
            runs = [record for record in group if record["impl"] == impl]
            if not runs:
                print("  %-9s  no record for this arch, batch and seq: no ratio" % impl)
                continue
            summary = summaries[impl] = summarise(runs)
            print(("  %-9s %10.1f %14.1f %12.1f %13.0f %5d  %s" % (
                impl, summary["tokens_per_s"], summary["step_ms_median"], summary["tokens_per_cpu_s"],
                summary["peak_rss_mb"], summary["runs"], summary["extra"])).rstrip())
        if len(summaries) == len(IMPLS):
            loraflow, pytorch = summaries["loraflow"], summaries["pytorch"]
            print("  loraflow / pytorch: %.2fx tokens/s, %.2fx tokens per CPU second, %.2fx peak RSS" % (
                loraflow["tokens_per_s"] / pytorch["tokens_per_s"],
                loraflow["tokens_per_cpu_s"] / pytorch["tokens_per_cpu_s"],
                loraflow["peak_rss_mb"] / pytorch["peak_rss_mb"]))


if __name__ == "__main__":
    main(sys.argv[1:])
