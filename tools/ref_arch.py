#!/usr/bin/env python3
"""Make the small Llama and Qwen3 teachers in tests/data/arch/ and what transformers computes with them.

    python3 tools/ref_arch.py [--out DIR]

Needs torch, transformers (5.x), safetensors and numpy; no network. Everything is seeded, so a rerun
writes the same models (up to the float rounding of the installed torch).

Four random-weight models, each a Hugging Face directory (config.json, model.safetensors,
tokenizer.json), chosen to cover the configuration fields the C teacher reads:
  llama-gqa    LlamaForCausalLM, hidden 64, 4 query / 2 key-value heads of 16, no biases, untied head,
               rope_theta 500000, rms_norm_eps 1e-5 (the distillation tests' teacher)
  llama-tied   LlamaForCausalLM, hidden 96, 4 query heads / 1 key-value head of head_dim 32 (given in
               the config: 4 x 32 != 96), attention_bias true (q, k, v and o biases), tied head
  qwen3        Qwen3ForCausalLM, hidden 128, 2 query / 1 key-value heads of head_dim 80, per-head
               q_norm/k_norm, tied head, rope_theta 1e6 (the "larger teacher" of the stage-2 test)
  qwen3-small  Qwen3ForCausalLM, hidden 64, 4 query / 2 key-value heads of 16 (heads x head_dim =
               hidden, as a QRWKV6 student needs), tied head
All four share one small tokenizer: the bundled Qwen2 tokenizer (models/qwen2-code-tiny) cut to its
256 byte tokens and first 253 merges, with <|endoftext|>, <|im_start|>, <|im_end|> moved to ids
509-511, so the vocabulary is 512 and the models stay small enough to commit.

Every weight is drawn at a scale where attention is far from uniform (matrices N(0, 1/fan_in),
embeddings N(0, 1), norm weights 1 + N(0, 0.2^2), biases N(0, 0.1^2)): a wrong rotary pairing, head
grouping or norm would move the logits by far more than the tests' tolerance.

Next to each model, NAME.ref.safetensors holds, for three seeded random token sequences S (lengths
5, 24, 64), computed in float32 one sequence at a time:
  S.ids I32 [T]; S.layer_in F32 [L,T,C] the input of every decoder layer (layer 0's is the
  embedding); S.attn_out F32 [L,T,C] every attention output after o_proj; S.hidden F32 [T,C] the
  final normed hidden states; S.logits F32 [T,V].
and for two prompts G: G.prompt I32, G.ids I32 (prompt + 24 greedy tokens from generate) and G.gap F32
(best minus second-best logit at each generated step). Through the tokenizer, for the binaries:
  eval.ids I32 [128], eval.nll F64 [1]: the first 128 tokens of tests/data/tokenizer/code.txt and the
  mean negative log-likelihood of tokens 2..128 given their prefix (what arwkv-eval prints);
  chat.prompt U8 (the text "def fibonacci(n):"), chat.ids I32: its greedy continuation, at most
  CHAT_NEW tokens, ending before <|endoftext|> (what arwkv-chat --raw --prompt prints), chat.gap F32.
"""
import argparse
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
N_BASE = 509  # byte tokens + merges kept from the Qwen tokenizer
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB = N_BASE + len(SPECIAL)

MODELS = {
    "llama-gqa": dict(arch="LlamaForCausalLM", hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, rope_theta=500000.0, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, attention_bias=False, head_dim=None),
    "llama-tied": dict(arch="LlamaForCausalLM", hidden_size=96, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=1, rope_theta=10000.0, rms_norm_eps=1e-6,
                       tie_word_embeddings=True, attention_bias=True, head_dim=32),
    "qwen3": dict(arch="Qwen3ForCausalLM", hidden_size=128, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, rope_theta=1000000.0, rms_norm_eps=1e-6,
                  tie_word_embeddings=True, attention_bias=False, head_dim=80),
    "qwen3-small": dict(arch="Qwen3ForCausalLM", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, rope_theta=1000000.0, rms_norm_eps=1e-6,
                        tie_word_embeddings=True, attention_bias=False, head_dim=16),  # Qwen3Config's default is 128
}
SEQ_LENS = (5, 24, 64)
GREEDY_PROMPTS = ([1, 2, 3, 4], [100, 7, 300, 42, 42, 9])
GREEDY_NEW = 24
EVAL_TEXT = os.path.join(ROOT, "tests", "data", "tokenizer", "code.txt")
EVAL_TOKENS = 128
CHAT_PROMPT = "def fibonacci(n):"
CHAT_NEW = 16


def small_tokenizer():
    """The bundled Qwen2 tokenizer.json with the vocabulary cut to N_BASE entries (ids 0..255 are the
    byte tokens, id 256 + i the result of merge i) and the special tokens renumbered after them."""
    with open(os.path.join(ROOT, "models", "qwen2-code-tiny", "tokenizer.json"), encoding="utf-8") as f:
        t = json.load(f)
    vocab = {k: v for k, v in t["model"]["vocab"].items() if v < N_BASE}
    merges = t["model"]["merges"][:N_BASE - 256]
    for a, b in merges:
        assert vocab[a + b] < N_BASE and a in vocab and b in vocab
    t["model"]["vocab"] = vocab
    t["model"]["merges"] = merges
    added = []
    for i, name in enumerate(SPECIAL):
        tok = next(a for a in t["added_tokens"] if a["content"] == name)
        tok = dict(tok, id=N_BASE + i)
        added.append(tok)
    t["added_tokens"] = added
    return t


def make_config(spec):
    import transformers
    common = dict(vocab_size=VOCAB, hidden_size=spec["hidden_size"], intermediate_size=spec["intermediate_size"],
                  num_hidden_layers=spec["num_hidden_layers"], num_attention_heads=spec["num_attention_heads"],
                  num_key_value_heads=spec["num_key_value_heads"], rms_norm_eps=spec["rms_norm_eps"],
                  tie_word_embeddings=spec["tie_word_embeddings"], attention_bias=spec["attention_bias"],
                  max_position_embeddings=2048, bos_token_id=N_BASE, eos_token_id=N_BASE, hidden_act="silu")
    if spec["head_dim"]:
        common["head_dim"] = spec["head_dim"]
    rope = {"rope_type": "default", "rope_theta": spec["rope_theta"]}
    if spec["arch"] == "LlamaForCausalLM":
        cfg = transformers.LlamaConfig(rope_parameters=rope, **common)
        return cfg, transformers.LlamaForCausalLM
    cfg = transformers.Qwen3Config(rope_parameters=rope, use_sliding_window=False, **common)
    return cfg, transformers.Qwen3ForCausalLM


def randomize(model, gen):
    import torch
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)


def reference(model, ids):
    """Layer inputs, attention outputs, final hidden states and logits of one sequence, float32."""
    import torch
    layers = model.model.layers
    layer_in, attn_out, hooks = [None] * len(layers), [None] * len(layers), []
    for i, layer in enumerate(layers):
        def pre(mod, args, kwargs, i=i):
            x = args[0] if args else kwargs["hidden_states"]
            layer_in[i] = x[0].detach().clone()
        def post(mod, args, out, i=i):
            attn_out[i] = out[0].detach().clone()
        hooks.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
        hooks.append(layer.self_attn.o_proj.register_forward_hook(post))
    with torch.no_grad():
        t = torch.tensor([ids], dtype=torch.long)
        hidden = model.model(input_ids=t).last_hidden_state[0]
        logits = model(input_ids=t).logits[0]
    for h in hooks:
        h.remove()
    return torch.stack(layer_in), torch.stack(attn_out), hidden, logits


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "arch"))
    args = p.parse_args()
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer
    torch.set_num_threads(2)
    tok = small_tokenizer()
    os.makedirs(args.out, exist_ok=True)
    for mi, (name, spec) in enumerate(MODELS.items()):
        gen = torch.Generator().manual_seed(1000 + mi)
        cfg, cls = make_config(spec)
        cfg.architectures = [spec["arch"]]
        model = cls(cfg).float().eval()
        randomize(model, gen)
        mdir = os.path.join(args.out, name)
        model.save_pretrained(mdir, safe_serialization=True)
        with open(os.path.join(mdir, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tok, f, ensure_ascii=False)
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(mdir, extra)):
                os.remove(os.path.join(mdir, extra))
        # reload from disk: the reference is what transformers computes from the files we commit
        model = cls.from_pretrained(mdir, dtype=torch.float32).eval()
        out = {}
        for si, T in enumerate(SEQ_LENS):
            ids = torch.randint(0, VOCAB, (T,), generator=gen).tolist()
            li, ao, h, lg = reference(model, ids)
            out[f"seq{si}.ids"] = torch.tensor(ids, dtype=torch.int32)
            out[f"seq{si}.layer_in"] = li.float().contiguous()
            out[f"seq{si}.attn_out"] = ao.float().contiguous()
            out[f"seq{si}.hidden"] = h.float().contiguous()
            out[f"seq{si}.logits"] = lg.float().contiguous()
        for gi, prompt in enumerate(GREEDY_PROMPTS):
            with torch.no_grad():
                res = model.generate(torch.tensor([prompt]), max_new_tokens=GREEDY_NEW, min_new_tokens=GREEDY_NEW,
                                     do_sample=False, output_scores=True, return_dict_in_generate=True,
                                     pad_token_id=N_BASE, eos_token_id=None)
            gaps = [float((s[0].topk(2).values[0] - s[0].topk(2).values[1])) for s in res.scores]
            out[f"greedy{gi}.prompt"] = torch.tensor(prompt, dtype=torch.int32)
            out[f"greedy{gi}.ids"] = res.sequences[0].to(torch.int32).contiguous()
            out[f"greedy{gi}.gap"] = torch.tensor(gaps, dtype=torch.float32)
        hf_tok = Tokenizer.from_file(os.path.join(mdir, "tokenizer.json"))
        with open(EVAL_TEXT, "rb") as f:
            ids = hf_tok.encode(f.read().decode("utf-8")).ids[:EVAL_TOKENS]
        with torch.no_grad():
            lg = model(input_ids=torch.tensor([ids])).logits[0].double()
        nll = torch.nn.functional.cross_entropy(lg[:-1], torch.tensor(ids[1:]), reduction="mean")
        out["eval.ids"] = torch.tensor(ids, dtype=torch.int32)
        out["eval.nll"] = torch.tensor([float(nll)], dtype=torch.float64)
        prompt = hf_tok.encode(CHAT_PROMPT).ids
        with torch.no_grad():
            res = model.generate(torch.tensor([prompt]), max_new_tokens=CHAT_NEW, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True, pad_token_id=N_BASE, eos_token_id=N_BASE)
        new = res.sequences[0, len(prompt):].tolist()
        if N_BASE in new:
            new = new[:new.index(N_BASE)]
        out["chat.prompt"] = torch.tensor(list(CHAT_PROMPT.encode()), dtype=torch.uint8)
        out["chat.ids"] = torch.tensor(new, dtype=torch.int32)
        out["chat.gap"] = torch.tensor([float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in res.scores], dtype=torch.float32)
        save_file(out, os.path.join(args.out, f"{name}.ref.safetensors"), metadata={"model": name})
        print(f"{mdir}: {spec['arch']}, {sum(p.numel() for p in model.parameters())} parameters; "
              f"min greedy gap {min(min(out[f'greedy{g}.gap'].tolist()) for g in range(len(GREEDY_PROMPTS))):.4f}; "
              f"eval nll {float(nll):.6f}; chat {len(new)} tokens, min gap {min(out['chat.gap'].tolist()):.4f}")


if __name__ == "__main__":
    main()
