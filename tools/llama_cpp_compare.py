#!/usr/bin/env python3
"""Do our models load in llama.cpp, and does llama.cpp compute what we compute?

Converts the bundled teacher, a tied ARWKV-7 student and a tied QRWKV6 student (made here with
arwkv-convert) with llama.cpp's own converter (convert_hf_to_gguf.py, F32), runs them through
llama.cpp (the llama_cpp Python binding, llama-cpp-python) and compares with our binaries:

  - the token ids of a text (llama.cpp's tokenizer from the GGUF against arwkv-tokenize);
  - the mean negative log-likelihood of that text (llama.cpp's logits against arwkv-eval);
  - the greedy continuation of a prompt (32 tokens, against arwkv-generate).

Not part of `make test`: it needs llama.cpp's source tree (for the converter and its gguf-py) and the
llama_cpp package built from the same version. Both come in the PyPI source package:

    pip download --no-deps --no-binary :all: llama-cpp-python     # vendor/llama.cpp inside
    pip install --no-deps ./llama_cpp_python-*.tar.gz              # builds llama.cpp (slow on 2 cores)
    python3 tools/llama_cpp_compare.py --llama-cpp DIR/vendor/llama.cpp [--out bench/results/FILE]

Exit status 0 when every model converts, loads and agrees; 1 when one does not; 77 when only the
converter is there (without the llama_cpp package: every model converted with the tensors llama.cpp
requires, but nothing was run).

The eos id: the converter writes 151645 (<|im_end|>) because the bundled teacher's
tokenizer_config.json (an instruct tokenizer's) names it, while our config.json and
generation_config.json say 151643 (<|endoftext|>). For a base teacher such as this one (trained on
documents that end with <|endoftext|>) 151643 is right; for an instruct teacher 151645 ends a turn
(and both end generation). The comparison below stops at either, so it does not depend on this.
"""
import argparse
import math
import os
import shutil
import subprocess
import sys

B = os.environ.get("B", "build")
TEACHER = "models/qwen2-code-tiny"
PROMPT = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) +"
TEXT_FILE = "tests/test_cli.c"
N_TOKENS = 256  # of the text, for the likelihood
N_NEW = 32      # greedy tokens
STOP_IDS = (151643, 151645)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def our_ids(model, path):
    return [int(x) for x in run([f"{B}/arwkv-tokenize", "--tokenizer", model, path]).split()]


def our_nll(model, path, n):
    out = run([f"{B}/arwkv-eval", "--model", model, "--text", path, "--max-tokens", str(n)])
    words = out.split()
    return int(words[words.index("tokens") + 1]), float(words[words.index("nll") + 1])


def our_greedy(model):
    return run([f"{B}/arwkv-generate", model, PROMPT, str(N_NEW)])


def llama_side(llama_cpp, gguf, text, n):
    llm = llama_cpp.Llama(model_path=gguf, n_ctx=2048, logits_all=True, verbose=False, n_threads=2)
    ids = llm.tokenize(text.encode(), add_bos=False, special=False)[:n]
    llm.reset()
    llm.eval(ids)
    nll = 0.0
    for t in range(len(ids) - 1):
        row = llm.scores[t]
        m = max(row)
        z = sum(math.exp(v - m) for v in row)
        nll += -(row[ids[t + 1]] - m - math.log(z))
    nll /= len(ids) - 1
    # greedy continuation, token by token (temperature 0, no penalty)
    llm.reset()
    prompt = llm.tokenize(PROMPT.encode(), add_bos=False, special=False)
    llm.eval(prompt)
    out = []
    for _ in range(N_NEW):
        row = llm.scores[llm.n_tokens - 1]
        nxt = max(range(len(row)), key=lambda i: row[i])
        if nxt in STOP_IDS:
            break
        out.append(nxt)
        llm.eval([nxt])
    return ids, nll, llm.detokenize(out).decode("utf-8", errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (convert_hf_to_gguf.py, gguf-py)")
    ap.add_argument("--work", default=f"{B}/llama-cpp-compare", help="where the students and GGUF files go")
    ap.add_argument("--out", help="also write the report to this file")
    a = ap.parse_args()
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    converter = os.path.join(a.llama_cpp, "convert_hf_to_gguf.py")
    try:
        import llama_cpp
    except ImportError:  # the converter alone still shows whether llama.cpp gets every tensor it requires
        llama_cpp = None
    if not os.path.exists(converter):
        print(f"SKIP: {converter} not found", file=sys.stderr)
        return 77
    os.makedirs(a.work, exist_ok=True)
    models = {"teacher (Qwen2)": TEACHER}
    for name, flags in (("arwkv7", ["--init", "inherit"]), ("qrwkv6", ["--arch", "qrwkv6"])):
        d = os.path.join(a.work, name)
        shutil.rmtree(d, ignore_errors=True)
        run([f"{B}/arwkv-convert", "--teacher", TEACHER, "--out", d, "--seed", "3"] + flags)
        models[f"tied {name} student"] = d
    with open(TEXT_FILE, encoding="utf-8") as f:
        text = f.read()
    env = dict(os.environ, PYTHONPATH=os.path.join(a.llama_cpp, "gguf-py") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if llama_cpp:
        say(f"llama.cpp (llama_cpp {llama_cpp.__version__}) against arwkv: {TEXT_FILE}, {N_TOKENS} tokens; greedy {N_NEW} tokens of a prompt")
    else:
        say(f"llama.cpp's converter ({converter}) only: the llama_cpp package is not installed, so nothing is run")
    sys.path.insert(0, os.path.join(a.llama_cpp, "gguf-py"))
    import gguf
    failed = 0
    for label, model in models.items():
        gguf_path = os.path.join(a.work, os.path.basename(model.rstrip("/")) + ".gguf")
        say(f"\n== {label}: {model}")
        try:
            run([sys.executable, converter, model, "--outtype", "f32", "--outfile", gguf_path], env=env)
            reader = gguf.GGUFReader(gguf_path)
            names = {t.name for t in reader.tensors}
            eos = int(reader.fields["tokenizer.ggml.eos_token_id"].parts[-1][0])
            # llama.cpp's qwen2 loader falls back to the embeddings; its arwkv7 and rwkv6qwen2 loaders require output.weight
            say(f"  converted      {len(names)} tensors, output.weight {'present' if 'output.weight' in names else 'ABSENT'}, eos id {eos}")
            if "output.weight" not in names and model != TEACHER:
                raise RuntimeError("no output.weight: llama.cpp would refuse to load it")
            if not llama_cpp:
                continue
            ids, nll, greedy = llama_side(llama_cpp, gguf_path, text, N_TOKENS)
        except Exception as e:  # conversion or loading refused: the very thing this checks
            say(f"FAIL llama.cpp: {str(e).strip()[-400:]}")
            failed += 1
            continue
        ours = our_ids(model, TEXT_FILE)[:N_TOKENS]
        n, our = our_nll(model, TEXT_FILE, N_TOKENS)
        mine = our_greedy(model)
        same_ids = ours == ids
        say(f"  token ids      {'identical' if same_ids else 'DIFFER'} ({len(ids)} tokens)")
        say(f"  nll            llama.cpp {nll:.6f}   arwkv {our:.6f}   |diff| {abs(nll - our):.2e}")
        say(f"  greedy         {'identical' if mine == greedy else 'DIFFER'}: {greedy!r}")
        if mine != greedy:
            say(f"                 arwkv: {mine!r}")
        if not (same_ids and n == len(ids) and abs(nll - our) < 1e-4 and mine == greedy):
            failed += 1
    say(f"\n{len(models) - failed} of {len(models)} models {'agree' if llama_cpp else 'convert with every tensor llama.cpp requires'}")
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 1 if failed else 0 if llama_cpp else 77


if __name__ == "__main__":
    sys.exit(main())
