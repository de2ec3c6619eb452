"""Prints the side-by-side table of run-kernels.sh from the JMH JSON and two OpenBLAS runs."""
import json
import re
import sys


def main(jmh_path, reference_before, reference_after):
    jmh = json.load(open(jmh_path))
    references = [json.load(open(path)) for path in (reference_before, reference_after)]
    # The faster of the two OpenBLAS runs (before and after JMH): the bar is never lowered by noise.
    best = {}
    for reference in references:
        for row in reference["results"]:
            key = (row["shape"], row["layout"])
            best[key] = max(best.get(key, 0.0), row["gflops"])
    print("reference: %s, numpy %s" % (references[0]["blas"], references[0]["numpy"]))
    print()
    print("%-14s %-16s %12s %12s %7s" % ("shape MxKxN", "layout", "loraflow", "OpenBLAS", "ratio"))
    ratios = []
    lora = {}
    for result in jmh:
        name = result["benchmark"].rsplit(".", 1)[1]
        params = result.get("params", {})
        milliseconds = result["primaryMetric"]["score"]
        if "shape" in params:
            m, k, n = (int(part) for part in params["shape"].split("x"))
            gflops = 2.0 * m * k * n / (milliseconds / 1e3) / 1e9
            # a frozen-weight variant (...Bf16, ...Nf4) against OpenBLAS's float32 sgemm of the same layout
            reference = best[(params["shape"], re.sub(r"(Bf16|Nf4)$", "", name))]
            ratios.append(gflops / reference)
            print("%-14s %-16s %8.1f GF/s %8.1f GF/s %6.0f%%" % (params["shape"], name, gflops, reference, 100 * gflops / reference))
        elif "adapter" in params:
            lora[params["adapter"]] = milliseconds
    if ratios:
        print("%-31s %34s" % ("lowest ratio to OpenBLAS", "%.0f%%" % (100 * min(ratios))))
    if lora:
        print()
        frozen = lora.get("0/0")
        for adapter, milliseconds in sorted(lora.items()):
            rank, dropout = adapter.split("/")
            line = "LoRALinear 768->2304, 512 rows, r=%s dropout=%s: %.2f ms forward+backward" % (rank, dropout, milliseconds)
            if frozen and adapter != "0/0":
                line += ", LoRA branch = %.1f%% of the frozen layer" % (100 * (milliseconds - frozen) / frozen)
            print(line)


if __name__ == "__main__":
    main(*sys.argv[1:4])
