#!/usr/bin/env python3
"""Expected token ids for tests/test_tokenizer.c, computed by Hugging Face `tokenizers`.

    python3 tests/gen_tokenizer_expected.py
        rewrite the committed fixtures in tests/data/tokenizer/ (small: run it when the cases or
        the hand-written texts change)
    python3 tests/gen_tokenizer_expected.py --out DIR --large
        write the same and the large corpora into DIR (test_tokenizer runs this into build/ when
        `tokenizers` is importable): the CPython standard library, tinyshakespeare, the translated
        man pages Debian installs, and every code point of Unicode in a few contexts

Files written into the output directory:
    documents          names of the documents, one per line
    NAME.txt           a document (hand-written ones stay where they are, in tests/data/tokenizer)
    NAME.ids           its ids with added tokens matched (tokenizer.encode(text).ids), space separated
    NAME.plain.ids     its ids with no added token matched, only where they differ from NAME.ids
    cases.jsonl        small generated cases, one JSON object a line: {"text", "ids"[, "plain"]}
    classes.txt        how tokenizers' regex classifies every code point: "first last class" ranges
                       of \\p{L} (L), \\p{N} (N) and \\s (S)
    nfc.txt            every code point that tokenizers' NFC changes: "cp: cp cp ..." (hex)

"With no added token matched" is computed by a copy of the tokenizer whose added_tokens list is
empty: the text is then all ordinary text, which is what arwkv encodes without ARWKV_TOKENIZE_SPECIAL."""
import argparse
import glob
import gzip
import json
import os
import random
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data", "tokenizer")
TOKENIZER = os.path.join(ROOT, "models", "qwen2-code-tiny", "tokenizer.json")
HAND_WRITTEN = ["prose", "code"]  # tests/data/tokenizer/NAME.txt, written for these tests


def load_tokenizers():
    from tokenizers import Tokenizer  # noqa: imported late so that --help works without it
    with open(TOKENIZER, encoding="utf-8") as f:
        spec = json.load(f)
    special = Tokenizer.from_str(json.dumps(spec))
    spec["added_tokens"] = []
    plain = Tokenizer.from_str(json.dumps(spec))
    return special, plain


def encode(tok, texts):
    return [e.ids for e in tok.encode_batch(texts)] if len(texts) > 1 else [tok.encode(texts[0]).ids]


# ---- generated cases ------------------------------------------------------------------------------

def valid(c):
    return not (0xD800 <= c <= 0xDFFF)


def cases():
    """Small texts, each encoded on its own (so each meets the start and the end of a text)."""
    rnd = random.Random(20240517)
    out = []
    add = out.append

    # contractions in every case, and the near-misses (U+2019, Kelvin sign, long s, dotless i)
    for suffix in ["s", "t", "re", "ve", "m", "ll", "d"]:
        for mask in range(1 << len(suffix)):
            v = "".join(ch.upper() if mask >> i & 1 else ch for i, ch in enumerate(suffix))
            for ctx in ["it'{}", "'{}", "'{}x", " '{}", "x'{} y", "1'{}", "''{}", "'{}'s", "\n'{}\n", "'{}1"]:
                add(ctx.format(v))
    for s in ["'ſ", "'ſt", "x'ſ", "'\u212a", "'K", "'k", "'\u2019s", "\u2019s", "'\u0130", "'ı", "'ß", "'ﬆ", "'\u017fs",
              "don't", "DON'T", "y'all", "rock'n'roll", "'''s", "'s's's", "' s", "'\ts", "'", "''", "'1", "'é", "'e\u0301"]:
        add(s)
        add("a" + s + "b")
    # digits of every script (and other numbers), alone, in runs, between letters and spaces
    nd = [c for c in range(0x110000) if valid(c) and unicodedata.category(chr(c)) == "Nd"]
    others = [c for c in range(0x110000) if valid(c) and unicodedata.category(chr(c)) in ("Nl", "No")]
    for i in range(0, len(nd), 10):
        run = "".join(chr(c) for c in nd[i:i + 10])
        add(run)
        add("x" + run + " y " + run[:3] + "z")
    for i in range(0, len(others), 12):
        add(" ".join(chr(c) for c in others[i:i + 12]) + "a" + "".join(chr(c) for c in others[i:i + 12]))
    add("1234567890 12.5 -3 1e10 0x1F 1,000,000 ½ ² ³ Ⅻ ① ⑩ ⓿ 𝟘𝟙𝟚 ١٢٣ ০১২ 〇一二")
    # every kind of white space, alone and in runs, before words, digits, punctuation, and at the end
    white = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B)) + \
        [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
    near_white = [0x180E, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x1C, 0x1D, 0x1E, 0x1F]
    for c in white + near_white:
        w = chr(c)
        for ctx in ["{w}", "{w}{w}", "a{w}b", "a{w}{w}b", "a{w}", "{w}a", "{w} a", " {w}a", "{w}1", "{w}!", "!{w}",
                    "a{w}\n", "\n{w}", "{w}\r\n", "x {w} {w}y", "{w}{w}{w}\n\n{w}{w}z", "1{w}2", "'{w}s"]:
            add(ctx.format(w=w))
    for _ in range(400):
        n = rnd.randint(1, 12)
        s = "".join(chr(rnd.choice(white + [0x20] * 6 + [0x0A] * 4)) for _ in range(n))
        add(rnd.choice(["", "a", "1", "!", "é", "中"]) + s + rnd.choice(["", "b", "2", "?", "ü", "文"]))
    # line endings
    for s in ["a\nb", "a\r\nb", "a\rb", "a\n\rb", "a\r\r\nb", "a\n\n\nb", "a \n b", "a\t\n\tb", "a;\r\n", "x}\n\n    y",
              "\r\n\r\n", "\n", "\r", "a\u2028b", "a\u2029b", "a\u0085b", "a\x0bb\x0cc", "end.\n", "end.\r\n  ", "  \n  ",
              "\n \n \n", " \n", "\n ", "{\n\t\"a\": 1,\n\t\"b\": [\n\t\t2\n\t]\n}\n"]:
        add(s)
    # combining marks and decomposed text: NFC must compose (and reorder) exactly as tokenizers does
    marks = [c for c in range(0x300, 0x370)] + [0x0483, 0x0591, 0x05B0, 0x05BC, 0x05C1, 0x064B, 0x0651, 0x0670,
                                                  0x093C, 0x094D, 0x09BC, 0x0E38, 0x0E48, 0x1AB0, 0x1DC0, 0x20D0,
                                                  0x20E3, 0x302A, 0x3099, 0x309A, 0xFE20, 0x1D165, 0x1D16D, 0x16FF0,
                                                  0x1E4EC, 0x11F41, 0x10EFD]
    bases = "aeiouyAEIOUYcnsgzrwxCNSGZRkKlLhHαεηιουωΑΕΗΙΟΥΩаеиоуыэюяАЕИОУкнгшзх" + "かきくけこカキクケコはひふへほハヒフヘホ" + \
        "ᄀᄁᄂᄃ가각나다" + "1 !\n'"
    for _ in range(1500):
        s = "".join(rnd.choice(bases) + "".join(chr(rnd.choice(marks)) for _ in range(rnd.choice([0, 1, 1, 2, 3, 5])))
                    for _ in range(rnd.randint(1, 4)))
        add(s)
    for word in ["élève", "Ångström", "naïve", "São Paulo", "Việt Nam", "Ελληνικά", "Ǖǘǚǜ", "ḍḥḷṃṇṛṣṭẓ", "가나다라마",
                 "がぎぐげご", "ﬁ ﬂ", "Å Ω K", "ǅ ǈ ǋ", "क़ ख़ ग़", "শ্র", "ཀྵ", "῾Ρ", "ϓ", "ϔ", "ἀ\u0345"]:
        for form in ["NFC", "NFD", "NFKC", "NFKD"]:
            add(unicodedata.normalize(form, word))
    for _ in range(300):  # Hangul jamo in every order
        s = "".join(chr(rnd.choice([rnd.randint(0x1100, 0x1112), rnd.randint(0x1161, 0x1175), rnd.randint(0x11A8, 0x11C2),
                                    rnd.randint(0xAC00, 0xD7A3), rnd.randint(0x3131, 0x318E), 0x1160, 0x115F])) for _ in range(rnd.randint(1, 6)))
        add(s)
    # canonical pairs that compose, one by one, and every singleton decomposition
    for c in range(0x110000):
        if not valid(c):
            continue
        d = unicodedata.decomposition(chr(c))
        if d and not d.startswith("<"):
            parts = "".join(chr(int(x, 16)) for x in d.split())
            if c % 3 == 0:
                add("x" + parts + "y" + chr(c))
    # emoji sequences
    for s in ["👋", "👋🏻👋🏼👋🏽👋🏾👋🏿", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🇯🇵🇺🇸🇩🇪", "#️⃣*️⃣0️⃣", "❤️", "❤︎",
              "🧑🏽\u200d🚀", "a👍b", " 👍 ", "👍!", "😀😃😄", "🫠🫡🫶", "\U0001F600\U000E0067\U000E0062\U000E007F",
              "🏴\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F", "☺️☹️", "✌🏾", "🤷\u200d♀️"]:
        add(s)
        add("I said " + s + " today.")
    # added tokens and near-misses
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|vision_pad|>", "<tool_call>",
                "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
                "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>"]
    for sp in specials:
        for ctx in ["{}", "a{}b", " {} ", "\n{}\n", "{}{}", "<{}>", "{}user\n", "x<|{}", "{}'s", "1{}2"]:
            add(ctx.replace("{}", sp))
        add(sp[:-1])
        add(sp[1:])
        add(sp.upper())
        add(sp[:-1] + " " + sp[-1])
    for s in ["<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
              "<|im_start|>assistant\n", "<|im_<|im_end|>", "<|im_end|>|>", "<<|endoftext|>>", "<|endoftext|",
              "<think></think>", "<think>\n\n</think>\n\n", "<|im_start|><|im_start|>", "<|>", "<||>", "< |im_end| >",
              "<|im_end|>\u0301", "<|im_end|>\u0338", "x<|endoftext|>\u0338", "<|endoftext|\u0338>"]:
        add(s)
    # control characters, noncharacters, private use, unassigned, BOM: valid in Rust strings
    for c in list(range(0x00, 0x20)) + [0x7F] + list(range(0x80, 0xA0)) + [0xAD, 0xFEFF, 0xFFFE, 0xFFFF, 0xFDD0, 0xFDEF,
                                                                          0xE000, 0xF8FF, 0x10FFFF, 0x10FFFE, 0xF0000,
                                                                          0x1FFFE, 0xE0001, 0xE007F, 0x0378, 0x2FFFF,
                                                                          0x30000, 0x31350, 0x323AF, 0x323B0, 0xFFFD]:
        ch = chr(c)
        for ctx in ["{}", "a{}b", "{}{}", " {}", "{} ", "1{}", "'{}", "{}s", "!{}!", "\n{}\n"]:
            add(ctx.replace("{}", ch))
    # letters and numbers new in Unicode 15.1 and 16.0 (tokenizers' regex knows them)
    for c in [0x1C89, 0xA7CB, 0x105C0, 0x10D4A, 0x11380, 0x13460, 0x16100, 0x16D40, 0x1E5D0, 0x2EBF0, 0x10D40, 0x116D0,
              0x1CCF0, 0x1E5F1, 0x16D70]:
        add("a" + chr(c) + chr(c + 1) + " " + chr(c) + "1")
    # long runs: BPE on pieces of thousands of symbols
    for s in [" " * 5000, "a" * 3000, "=" * 2000, "\n" * 1000, "\t " * 700, "ab" * 1500, "1" * 500, "ё" * 1200,
              " " * 4000 + "x", "-" * 999 + ">", "😀" * 300, "Z" * 2048 + "z" * 2048, "\r\n" * 800,
              "".join(rnd.choice("ACGT") for _ in range(3000)),
              "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(4000)),
              "".join(rnd.choice(" \t\n") for _ in range(2000)) + "x"]:
        add(s)
    for base in ["e", "\u1100", " ", "1"]:  # long runs of combining marks: the canonical sort of many
        add(base + "".join(chr(rnd.choice(marks)) for _ in range(1500)) + "z")
    # random mixtures of all of the above
    pool = [chr(c) for c in white + near_white + marks[:40]] + list("aZ9 '!.,;:-_()[]{}<>|/\\\"@#$%^&*+=~`?\n\r\t") + \
        ["<|im_end|>", "<|endoftext|>", "<think>", "'s", "'LL", "ſ", "é", "e\u0301", "中文", "한", "ᄀ", "ᅡ", "ᆨ", "ٱ",
         "١", "٣", "😀", "\u200d", "\ufe0f", "🏽", "\x00", "\x7f", "\x85", "\ufeff", "\U0010ffff", "𝟘", "ℌ", "ǅ", "İ",
         "ß", "ﬁ", "Ω", "Å", "Kelvin\u212a", "  ", "\n\n", " \n", "\r\n", "123", "x" * 20]
    for _ in range(1500):
        add("".join(rnd.choice(pool) for _ in range(rnd.randint(1, 24))))
    return out


def documents_large():
    """(name, text) of the large corpora on this machine; those that are missing are left out."""
    docs = []
    py = sorted(glob.glob("/usr/lib/python3*/*.py"))
    if py:
        docs.append(("cpython", "".join(open(p, encoding="utf-8", errors="replace").read() for p in py)))
    shared = os.environ.get("ARWKV_SHARED") or os.path.join(ROOT, "..", "shared")
    shakespeare = os.path.join(shared, "data", "tinyshakespeare.txt")
    if os.path.exists(shakespeare):
        docs.append(("shakespeare", open(shakespeare, encoding="utf-8").read()))
    # the non-Latin ones, and a few Latin-script ones with many diacritics (the others are slow to
    # encode with tokenizers and add little)
    for lang in ["ru", "uk", "ja", "ko", "zh_CN", "zh_TW", "pl", "cs", "tr", "es"]:
        pages = sorted(glob.glob("/usr/share/man/%s/man*/*.gz" % lang))
        if pages:
            text = "".join(gzip.open(p).read().decode("utf-8", errors="replace") for p in pages)
            docs.append(("man-" + lang, text))
    # every code point in a few contexts: all of the BMP and every assigned one, and a sample of the
    # unassigned and private-use ones (surrogates excluded: they are not characters)
    lines = []
    for c in range(0x110000):
        if valid(c) and (c < 0x10000 or unicodedata.category(chr(c)) not in ("Cn", "Co") or c % 61 == 0):
            ch = chr(c)
            lines.append("a%s%s %s1'%s!" % (ch, ch, ch, ch))
    docs.append(("unicode", "\n".join(lines)))
    return docs


def classes():
    """tokenizers' \\p{L}, \\p{N} and \\s over all code points, measured through its regex engine."""
    from tokenizers import Regex, normalizers
    cps = [c for c in range(0x110000) if valid(c) and c not in (0, 1)]
    text = "\x00".join(chr(c) for c in cps)
    ranges = []
    for name, pattern in (("L", r"\p{L}"), ("N", r"\p{N}"), ("S", r"\s")):
        marked = normalizers.Replace(Regex(pattern), "\x01").normalize_str(text).split("\x00")
        assert len(marked) == len(cps)
        members = [c for c, m in zip(cps, marked) if m == "\x01"]
        start = prev = None
        for c in members:
            if start is not None and c == prev + 1:
                prev = c
                continue
            if start is not None:
                ranges.append((start, prev, name))
            start = prev = c
        if start is not None:
            ranges.append((start, prev, name))
    return sorted(ranges)


def nfc_changes():
    from tokenizers import normalizers
    cps = [c for c in range(0x110000) if valid(c) and c != 0]
    out = normalizers.NFC().normalize_str("\x00".join(chr(c) for c in cps)).split("\x00")
    assert len(out) == len(cps)
    return [(c, o) for c, o in zip(cps, out) if o != chr(c)]


def write_ids(path, ids):
    with open(path, "w") as f:
        f.write(" ".join(map(str, ids)) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DATA)
    ap.add_argument("--large", action="store_true", help="also the large corpora of this machine")
    args = ap.parse_args()
    try:
        special, plain = load_tokenizers()
    except ImportError:
        sys.exit("gen_tokenizer_expected: the Python package `tokenizers` is not installed")
    os.makedirs(args.out, exist_ok=True)

    with open(TOKENIZER, encoding="utf-8") as f:
        added = [a["content"] for a in json.load(f)["added_tokens"]]
    docs = [(name, None) for name in HAND_WRITTEN]
    if args.large:
        docs += documents_large()
    names = []
    for name, text in docs:
        if text is None:
            with open(os.path.join(DATA, name + ".txt"), encoding="utf-8", newline="") as f:
                text = f.read()
        else:
            with open(os.path.join(args.out, name + ".txt"), "w", encoding="utf-8", newline="") as f:
                f.write(text)
        ids = special.encode(text).ids
        write_ids(os.path.join(args.out, name + ".ids"), ids)
        plain_path = os.path.join(args.out, name + ".plain.ids")
        has_added = any(a in text for a in added)
        plain_ids = plain.encode(text).ids if has_added else ids
        if plain_ids != ids:
            write_ids(plain_path, plain_ids)
        elif os.path.exists(plain_path):
            os.remove(plain_path)
        names.append(name)
    with open(os.path.join(args.out, "documents"), "w") as f:
        f.write("".join(n + "\n" for n in names))

    texts = cases()
    ids = encode(special, texts)
    plain_ids = encode(plain, texts)
    with open(os.path.join(args.out, "cases.jsonl"), "w", encoding="utf-8") as f:
        for t, a, b in zip(texts, ids, plain_ids):
            row = {"text": t, "ids": a}
            if b != a:
                row["plain"] = b
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    with open(os.path.join(args.out, "classes.txt"), "w") as f:
        for a, b, name in classes():
            f.write("%x %x %s\n" % (a, b, name))
    with open(os.path.join(args.out, "nfc.txt"), "w") as f:
        for c, o in nfc_changes():
            f.write("%x: %s\n" % (c, " ".join("%x" % ord(x) for x in o)))
    print("gen_tokenizer_expected: %d documents, %d cases into %s" % (len(names), len(texts), args.out))


if __name__ == "__main__":
    main()
