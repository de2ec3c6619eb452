#!/usr/bin/env python3
"""llama.cpp's CPU time per decoded token, which a loaded machine's time slicing does not inflate as it does wall time.

usage: llama_cpu_time.py WORK MODEL.gguf QUANT N THREADS

Runs the llama.cpp anchor's llama_run.mjs (copied into WORK, beside node-llama-cpp) twice on MODEL.gguf, prompt ids
1..16: generating 2 tokens and N tokens. The difference of the two processes' CPU time (user + system, all threads)
over N - 2 tokens is the CPU time of a decode step, without the loading, the prompt and the first token. Prints one
JSON line (engine "llama.cpp/cpu-time", quant QUANT, threads, cpu_ms_per_token, and the N-token run's wall figures).
"""
import json
import resource
import subprocess
import sys


def cpu_seconds_of(command, cwd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.PIPE, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), json.loads(out)


def main(argv):
    if len(argv) != 5:
        sys.exit(__doc__.strip().splitlines()[2])
    work, model, quant, n, threads = argv[0], argv[1], argv[2], int(argv[3]), argv[4]
    ids = ",".join(str(i) for i in range(1, 17))
    short, _ = cpu_seconds_of(["node", "llama_run.mjs", model, ids, "2", threads], work)
    full, run = cpu_seconds_of(["node", "llama_run.mjs", model, ids, str(n), threads], work)
    print(json.dumps({"engine": "llama.cpp/cpu-time", "quant": quant, "threads": int(threads), "n": n,
                      "cpu_ms_per_token": round(1000 * (full - short) / (n - 2), 3),
                      "decode_tokens_per_s": run["decode_tokens_per_s"],
                      "llama_eval_ms_per_token": run["llama_eval_ms_per_token"]}))


if __name__ == "__main__":
    main(sys.argv[1:])
