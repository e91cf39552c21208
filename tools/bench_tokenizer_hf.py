#!/usr/bin/env python3
"""Hugging Face `tokenizers` on the texts of `arwkv-bench tokenizer`, on one thread, for comparison.

    python3 tools/bench_tokenizer_hf.py [--tokenizer PATH] [--runs N]

Prints the load time of tokenizer.json and the encode throughput (MB of UTF-8 input per second) of
tokenizer.encode(text) on each whole text: the first run (tokenizers' word cache empty, as for
arwkv, whose cache lives only inside one encode call) and the best of N runs (cache warm), in wall
time and in CPU time of this process (the fairer figure on a busy machine). Texts:
    code       the CPython standard library: every .py file of /usr/lib/python3.X, concatenated
    prose      tinyshakespeare ($ARWKV_SHARED or ../shared, data/tinyshakespeare.txt)
    non-Latin  the translated man pages (ru uk ja ko zh_CN zh_TW) under /usr/share/man, gunzipped
The files are read in the same order as tools/bench/tokenizer.h reads them, so the bytes are equal."""
import argparse
import glob
import gzip
import os
import sys
import time

# one thread: tokenizers parallelizes with rayon, and only encode_batch uses it, but make sure
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def texts():
    code = b"".join(open(p, "rb").read() for p in sorted(glob.glob("/usr/lib/python3*/*.py")))
    shared = os.environ.get("ARWKV_SHARED") or "../shared"
    path = os.path.join(shared, "data", "tinyshakespeare.txt")
    prose = open(path, "rb").read() if os.path.exists(path) else b""
    man = b""
    for lang in ["ru", "uk", "ja", "ko", "zh_CN", "zh_TW"]:
        for p in sorted(glob.glob("/usr/share/man/%s/man*/*.gz" % lang)):
            man += gzip.open(p).read()
    return [("code", code), ("prose", prose), ("non-Latin", man)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models", "qwen2-code-tiny", "tokenizer.json"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import tokenizers
    t0, c0 = time.perf_counter(), time.process_time()
    tok = tokenizers.Tokenizer.from_file(args.tokenizer)
    print("  tokenizers %s, load %s: %.3f s (cpu %.3f s)" % (tokenizers.__version__, args.tokenizer, time.perf_counter() - t0,
                                                             time.process_time() - c0))
    print("  %-10s %10s %10s %11s %11s %11s" % ("text", "bytes", "tokens", "first MB/s", "best MB/s", "best cpu"))
    for name, data in texts():
        if not data:
            print("  %-10s (not found)" % name)
            continue
        # invalid UTF-8 (there is none in these files) would need a policy tokenizers does not have
        text = data.decode("utf-8", errors="replace")
        times, cpu = [], []
        for _ in range(max(1, args.runs)):
            t0, c0 = time.perf_counter(), time.process_time()
            ids = tok.encode(text).ids
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        mb = len(data) / 1e6
        print("  %-10s %10d %10d %11.1f %11.1f %11.1f" % (name, len(data), len(ids), mb / times[0], mb / min(times),
                                                          mb / min(cpu)))
    print("  (one thread, %d runs)" % args.runs)


if __name__ == "__main__":
    sys.exit(main())
