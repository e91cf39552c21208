#!/usr/bin/env python3
"""Make tests/data/teacher_ref.safetensors: what Hugging Face transformers computes, in float32, with
a Qwen2 checkpoint on inputs longer than the 24-token reference in shared/reference/.

    python3 tools/ref_teacher.py MODEL_DIR [--text FILE]... [--out PATH] [--device cuda|cpu]

MODEL_DIR is a Qwen2ForCausalLM directory (config.json, safetensors, tokenizer.json), e.g. the
bundled models/qwen2-code-tiny. Needs torch, transformers (5.x) and tokenizers; no network.

Token ids are made here, by the Hugging Face tokenizer of MODEL_DIR, and stored in the fixture: the
C tests read them from the fixture and never tokenize. The texts are held-out Python source: the
files given with --text, else files of this machine's CPython standard library (the bundled teacher
never saw it).

What goes in (every sequence runs alone, batch size 1, as transformers does it; positions from 0):
  long.*         one sequence of 2048 tokens
  seq0/1/2.*     three sequences of different lengths (the C test also runs them as one batch)
  greedy0/1.*    greedy continuations of two prompts, stopping at the end-of-text token
For each sequence S:
  S.ids I32 [T]; S.positions I32 [P], a sample of positions; at those positions the 64 largest
  logits S.topk_logits F32 [P,64] and their token ids S.topk_ids I32 [P,64], and the log-sum-exp of
  the whole row S.logsumexp F32 [P] (computed in float64); long.full_positions I32 [2] and
  long.full_logits F32 [2,vocab] are two whole rows. A full row is 600 KB at Qwen's vocabulary, so
  the rest is kept as top-k plus log-sum-exp: the file stays under 3 MB.
For each greedy run G: G.prompt I32, G.ids I32 (prompt + continuation) and G.gap F32 (the margin
between the best and second-best logit at each generated step, to tell a near-tie from a bug).
"""
import argparse
import glob
import os
import sys

TOPK = 64
LONG_LEN = 2048
SEQ_LENS = (700, 333, 1200)
GREEDY_NEW = 32


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir")
    p.add_argument("--text", action="append", default=[], help="held-out text file (repeatable); default: CPython stdlib files")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "teacher_ref.safetensors"))
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    return p.parse_args()


def stdlib_texts():
    """A few large, stable modules of this machine's CPython standard library, in a fixed order."""
    root = os.path.dirname(os.__file__)
    names = ["argparse.py", "typing.py", "inspect.py", "tarfile.py", "pathlib.py", "textwrap.py", "ast.py"]
    files = [os.path.join(root, n) for n in names if os.path.isfile(os.path.join(root, n))]
    if len(files) < 4:  # a trimmed Python: any large modules will do
        files = sorted(glob.glob(os.path.join(root, "*.py")), key=lambda f: -os.path.getsize(f))[:7]
    return files


def take(ids_list, n, used):
    """The first n ids of the first text with at least n that is not used yet."""
    for i, ids in enumerate(ids_list):
        if i not in used and len(ids) >= n:
            used.add(i)
            return ids[:n]
    sys.exit(f"ref_teacher: no unused text has {n} tokens; pass longer files with --text")


def sample_positions(T, every):
    """Every `every`-th position, plus the first few and the last: where context is shortest and longest."""
    pos = set(range(0, T, every)) | {0, 1, 2, 3, T - 2, T - 1}
    return sorted(p for p in pos if 0 <= p < T)


def main():
    args = parse_args()
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer
    import transformers
    from transformers import AutoModelForCausalLM

    # float32 everywhere: no TF32 in the matrix products, which would cost three decimal digits
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")

    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    texts = args.text or stdlib_texts()
    if not texts:
        sys.exit("ref_teacher: no text files (pass --text FILE)")
    ids_list = []
    for f in texts:
        with open(f, encoding="utf-8") as fh:
            ids_list.append(tok.encode(fh.read(), add_special_tokens=False).ids)

    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32, attn_implementation="eager")
    model.to(device).eval()
    cfg = model.config
    eos = cfg.eos_token_id if isinstance(cfg.eos_token_id, int) else cfg.eos_token_id[0]

    @torch.no_grad()
    def logits_at(ids, positions):
        x = torch.tensor([ids], dtype=torch.long, device=device)
        hidden = model.model(input_ids=x, use_cache=False).last_hidden_state[0]  # after the final norm
        return model.lm_head(hidden[positions]).float()  # [P, vocab]

    out = {}

    def add_sequence(name, ids, every, full_positions=()):
        positions = sample_positions(len(ids), every)
        logits = logits_at(ids, positions)
        top = torch.topk(logits, TOPK, dim=-1)
        out[f"{name}.ids"] = torch.tensor(ids, dtype=torch.int32)
        out[f"{name}.positions"] = torch.tensor(positions, dtype=torch.int32)
        out[f"{name}.topk_logits"] = top.values.cpu().contiguous()
        out[f"{name}.topk_ids"] = top.indices.to(torch.int32).cpu().contiguous()
        out[f"{name}.logsumexp"] = torch.logsumexp(logits.double(), dim=-1).float().cpu()
        if full_positions:
            out[f"{name}.full_positions"] = torch.tensor(full_positions, dtype=torch.int32)
            out[f"{name}.full_logits"] = logits_at(ids, list(full_positions)).cpu().contiguous()
        print(f"ref_teacher: {name}: {len(ids)} tokens, logits at {len(positions)} positions", file=sys.stderr)

    used = set()
    add_sequence("long", take(ids_list, LONG_LEN, used), 8, full_positions=(LONG_LEN // 2, LONG_LEN - 1))
    for i, n in enumerate(SEQ_LENS):
        add_sequence(f"seq{i}", take(ids_list, n, used), 16)

    # Greedy decoding by its definition: a full forward per step, argmax of the last row (the first
    # on ties, as torch.argmax), stop after the end-of-text token.
    prompts = [tok.encode("import os\nimport sys\n\n\ndef main(argv):\n", add_special_tokens=False).ids,
               take(ids_list, 48, set())]
    for g, prompt in enumerate(prompts):
        ids, gaps = list(prompt), []
        with torch.no_grad():
            for _ in range(GREEDY_NEW):
                last = logits_at(ids, [len(ids) - 1])[0]
                top2 = torch.topk(last, 2)
                gaps.append(float(top2.values[0] - top2.values[1]))
                ids.append(int(torch.argmax(last)))
                if ids[-1] == eos:
                    break
        out[f"greedy{g}.prompt"] = torch.tensor(prompt, dtype=torch.int32)
        out[f"greedy{g}.ids"] = torch.tensor(ids, dtype=torch.int32)
        out[f"greedy{g}.gap"] = torch.tensor(gaps, dtype=torch.float32)
        print(f"ref_teacher: greedy{g}: {len(prompt)} prompt + {len(ids) - len(prompt)} tokens, smallest margin {min(gaps):.3g}",
              file=sys.stderr)

    meta = {
        "what": "transformers float32 logits of a Qwen2 model on held-out Python source (tools/ref_teacher.py)",
        "model": os.path.basename(os.path.normpath(args.model_dir)),
        "texts": ",".join(os.path.basename(t) for t in texts),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "attn_implementation": "eager",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, args.out, metadata=meta)
    print(f"ref_teacher: wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
