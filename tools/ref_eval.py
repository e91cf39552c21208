#!/usr/bin/env python3
"""What arwkv-eval prints, computed by Hugging Face transformers (float32), for comparison.

    python3 tools/ref_eval.py MODEL_DIR FILE... [--max-tokens N] [--device cuda|cpu]

For each file: the Hugging Face tokenizer of MODEL_DIR encodes the whole file (its bytes decoded as
UTF-8 with surrogate escapes, no special tokens added), the first N tokens (default 1024) run as one
sequence, and the line printed is the one arwkv-eval prints:
    FILE tokens N nll X ppl Y
with X the mean negative log-likelihood in nats of tokens 2..N given their prefix."""
import argparse
import math
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("files", nargs="+")
    p.add_argument("--max-tokens", type=int, default=1024)
    p.add_argument("--device", default=None)
    a = p.parse_args()
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tok = Tokenizer.from_file(a.model + "/tokenizer.json")
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).to(device).eval()
    for f in a.files:
        text = open(f, "rb").read().decode("utf-8", errors="surrogateescape")
        ids = tok.encode(text, add_special_tokens=False).ids[: a.max_tokens]
        x = torch.tensor([ids], device=device)
        with torch.no_grad():
            logits = model(x).logits[0].double()
        lp = torch.log_softmax(logits[:-1], dim=-1)
        nll = -lp.gather(1, x[0, 1:, None]).mean().item()
        print(f"{f} tokens {len(ids)} nll {nll:.6f} ppl {math.exp(nll):.4f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
