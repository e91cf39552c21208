#!/usr/bin/env python3
"""Generate the Unicode tables that arwkv.h embeds for the tokenizer.

    python3 tools/gen_unicode.py              rewrite the generated block inside arwkv.h
    python3 tools/gen_unicode.py --check      exit 1 if arwkv.h's block is not what this produces
    python3 tools/gen_unicode.py --ucd DIR    read the Unicode Character Database from DIR
                                              (default /usr/share/unicode, Debian's unicode-data)

The reference we must reproduce is Hugging Face `tokenizers`, and its two Unicode-dependent parts
do not use the same Unicode version:

  * the pre-tokenizer regex runs on Oniguruma (through the `onig` crate), whose \\p{L}, \\p{N} and
    \\s know Unicode 16.0. Debian bookworm ships UCD 15.0, so the letters and numbers that Unicode
    15.1 and 16.0 added are listed below (ADDED_AFTER_15_0); nothing was removed or re-categorised.
    \\s is the White_Space property (it includes U+0085), unchanged since long before 15.0.
  * the NFC normalizer uses the `unicode-normalization-alignments` crate, whose tables are those of
    Unicode 9.0: code points assigned after 9.0 have no decomposition, combining class 0 and never
    compose. We take the 15.0 data and keep only what DerivedAge.txt says existed in 9.0.

Both facts were measured code point by code point against tokenizers 0.23.3 (see
tests/gen_tokenizer_expected.py, which writes the classes it observes and the test compares them
with these tables)."""
import argparse
import os
import sys

BEGIN = "/* ---- BEGIN generated Unicode tables"
END = "/* ---- END generated Unicode tables ---- */"
NFC_VERSION = (9, 0)

# Letters (gc L*) and numbers (gc N*) that Unicode 15.1 and 16.0 assigned, as [first, last] ranges.
# 15.1 added CJK Extension I (2EBF0..2EE5D); the rest is 16.0 (Garay, Gurung Khema, Kirat Rai,
# Ol Onal, Sunuwar, Todhri, Tulu-Tigalari, Egyptian hieroglyphs extension A, new Latin/Cyrillic
# letters, and the digits of those scripts plus Outlined Digits).
ADDED_AFTER_15_0 = {
    "L": [(0x1C89, 0x1C8A), (0xA7CB, 0xA7CD), (0xA7DA, 0xA7DC), (0x105C0, 0x105F3), (0x10D4A, 0x10D65),
          (0x10D6F, 0x10D85), (0x10EC2, 0x10EC4), (0x11380, 0x11389), (0x1138B, 0x1138B), (0x1138E, 0x1138E),
          (0x11390, 0x113B5), (0x113B7, 0x113B7), (0x113D1, 0x113D1), (0x113D3, 0x113D3), (0x11BC0, 0x11BE0),
          (0x13460, 0x143FA), (0x16100, 0x1611D), (0x16D40, 0x16D6C), (0x18CFF, 0x18CFF), (0x1E5D0, 0x1E5ED),
          (0x1E5F0, 0x1E5F0), (0x2EBF0, 0x2EE5D)],
    "N": [(0x10D40, 0x10D49), (0x116D0, 0x116E3), (0x11BF0, 0x11BF9), (0x16130, 0x16139), (0x16D70, 0x16D79),
          (0x1CCF0, 0x1CCF9), (0x1E5F1, 0x1E5FA)],
}

CLASS_OTHER, CLASS_LETTER, CLASS_NUMBER, CLASS_SPACE = 0, 1, 2, 3
QC_YES, QC_MAYBE, QC_NO = 0, 1, 2
HANGUL_S, HANGUL_COUNT = 0xAC00, 11172


def data_lines(path):
    """Fields of each non-comment line of a UCD file, stripped."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                yield [x.strip() for x in line.split(";")]


def code_range(field):
    if ".." in field:
        a, b = field.split("..")
        return int(a, 16), int(b, 16)
    return int(field, 16), int(field, 16)


def read_ucd(ucd):
    version = None
    with open(os.path.join(ucd, "DerivedAge.txt"), encoding="utf-8") as f:
        first = f.readline()
        if "DerivedAge-" in first:
            version = first.split("DerivedAge-")[1].split(".txt")[0]
    category, ccc, decomposition = {}, {}, {}
    rows = list(data_lines(os.path.join(ucd, "UnicodeData.txt")))
    i = 0
    while i < len(rows):
        r = rows[i]
        cp = int(r[0], 16)
        last = cp
        if r[1].endswith(", First>"):
            last = int(rows[i + 1][0], 16)
            i += 1
        for c in range(cp, last + 1):
            category[c] = r[2]
            if int(r[3]):
                ccc[c] = int(r[3])
        if r[5] and not r[5].startswith("<"):
            decomposition[cp] = [int(x, 16) for x in r[5].split()]
        i += 1
    white = set()
    for f in data_lines(os.path.join(ucd, "PropList.txt")):
        if f[1] == "White_Space":
            a, b = code_range(f[0])
            white.update(range(a, b + 1))
    age = {}
    for f in data_lines(os.path.join(ucd, "DerivedAge.txt")):
        a, b = code_range(f[0])
        v = tuple(int(x) for x in f[1].split("."))
        for c in range(a, b + 1):
            age[c] = v
    excluded = set()
    for f in data_lines(os.path.join(ucd, "CompositionExclusions.txt")):
        excluded.add(int(f[0], 16))
    qc_no_15 = set()
    for f in data_lines(os.path.join(ucd, "DerivedNormalizationProps.txt")):
        if len(f) >= 3 and f[1] == "NFC_QC":
            a, b = code_range(f[0])
            for c in range(a, b + 1):
                qc_no_15.add((c, f[2]))
    return version, category, ccc, decomposition, white, age, excluded, qc_no_15


def transitions(values):
    """[(start, value)] at every change of value over 0..len-1."""
    out = [(0, values[0])]
    for c in range(1, len(values)):
        if values[c] != values[c - 1]:
            out.append((c, values[c]))
    return out


def c_array(ctype, name, values, per_line, fmt):
    lines = ["static const %s %s[%d] = {" % (ctype, name, len(values))]
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(fmt % v for v in values[i:i + per_line]) + ",")
    lines.append("};")
    return lines


def generate(ucd):
    version, category, ccc, decomposition, white, age, excluded, qc_15 = read_ucd(ucd)
    if version != "15.0.0":
        sys.exit("gen_unicode: expected UCD 15.0.0 in %s, found %s; the 15.1/16.0 additions below assume 15.0"
                 % (ucd, version))
    n = 0x110000

    # Pre-tokenizer classes.
    cls = [CLASS_OTHER] * n
    for c, gc in category.items():
        if gc[0] == "L":
            cls[c] = CLASS_LETTER
        elif gc[0] == "N":
            cls[c] = CLASS_NUMBER
    for key, value in (("L", CLASS_LETTER), ("N", CLASS_NUMBER)):
        for a, b in ADDED_AFTER_15_0[key]:
            for c in range(a, b + 1):
                assert c not in category, "U+%04X is already assigned in 15.0" % c
                cls[c] = value
    for c in white:
        assert cls[c] == CLASS_OTHER
        cls[c] = CLASS_SPACE

    # NFC as of Unicode 9.0.
    def known(c):
        return c in age and age[c] <= NFC_VERSION

    ccc9 = {c: k for c, k in ccc.items() if known(c)}
    dec9 = {c: d for c, d in decomposition.items() if known(c) and not (HANGUL_S <= c < HANGUL_S + HANGUL_COUNT)}
    for d in dec9.values():
        assert all(known(x) for x in d) and 1 <= len(d) <= 2
    composite = {}
    for c, d in dec9.items():
        if len(d) == 2 and c not in excluded and ccc9.get(c, 0) == 0 and ccc9.get(d[0], 0) == 0:
            composite[c] = d
    qc = [QC_YES] * n
    for c in dec9:
        if c not in composite:
            qc[c] = QC_NO  # decomposes and never comes back: cannot appear in NFC
    for d in composite.values():
        qc[d[1]] = QC_MAYBE  # may compose with what precedes it
    for c in list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3)):
        qc[c] = QC_MAYBE  # Hangul vowel and trailing jamo compose algorithmically
    # Cross-check with the UCD's own NFC_QC for the code points 9.0 knew.
    for c, v in qc_15:
        if known(c):
            assert {"N": QC_NO, "M": QC_MAYBE}[v] == qc[c], "NFC_QC mismatch at U+%04X" % c
    for c in range(0x300):
        assert qc[c] == QC_YES and c not in ccc9, "the ASCII/Latin-1 fast path assumes U+%04X is inert" % c
    nfc_key = [(qc[c] << 8) | ccc9.get(c, 0) for c in range(n)]

    class_t = transitions(cls)
    nfc_t = transitions(nfc_key)
    dec_sorted = sorted(dec9.items())
    dec_words = []
    for c, d in dec_sorted:
        w = (c << 42) | (d[0] << 21) | (d[1] if len(d) == 2 else 0)
        if c in composite:
            w |= 1 << 63
        dec_words.append(w)
    index_of = {c: i for i, (c, _) in enumerate(dec_sorted)}
    comp_index = [index_of[c] for c, d in sorted(composite.items(), key=lambda t: (t[1][0], t[1][1]))]
    assert len(dec_words) < 65536

    def full(c):
        return sum((full(x) for x in dec9[c]), []) if c in dec9 else [c]
    max_decomp = max(3, max(len(full(c)) for c in dec9))  # 3: Hangul L V T
    # arwkv__nfc sizes its buffers on these: at most 2 characters per UTF-8 byte after full
    # decomposition (Hangul: 3 bytes, 3 jamo), and at most 3 bytes of UTF-8 per byte
    for c in dec9:
        n = len(chr(c).encode("utf-8"))
        assert len(full(c)) <= 2 * n and sum(len(chr(x).encode("utf-8")) for x in full(c)) <= 3 * n, "U+%04X" % c

    sizes = (len(class_t) * 4, len(nfc_t) * 4, len(dec_words) * 8, len(comp_index) * 2)
    out = [
        BEGIN + ": tools/gen_unicode.py wrote them; do not edit by hand ----",
        "   Source: the Unicode Character Database %s as Debian's unicode-data package installs it" % version,
        "   (UnicodeData.txt, PropList.txt, DerivedAge.txt, CompositionExclusions.txt), plus the letters and",
        "   numbers of Unicode 15.1 and 16.0 listed in the generator. %d bytes of data in all:" % sum(sizes),
        "     arwkv__uni_class      %5d bytes  pre-tokenizer class, at each change: start << 2 | class" % sizes[0],
        "                                      (0 other, 1 letter \\p{L}, 2 number \\p{N}, 3 White_Space \\s)",
        "     arwkv__uni_nfc        %5d bytes  NFC quick check and combining class (Unicode 9.0), at each" % sizes[1],
        "                                      change: start << 10 | qc << 8 | ccc (qc: 0 yes, 1 maybe, 2 no)",
        "     arwkv__uni_decomp     %5d bytes  canonical decompositions (Unicode 9.0, Hangul excluded), by" % sizes[2],
        "                                      code point: composes << 63 | cp << 42 | first << 21 | second",
        "     arwkv__uni_compose    %5d bytes  the decompositions that compose back, ordered by (first, second)" % sizes[3],
        "*/",
        "#define ARWKV__UNI_MAX_DECOMP %d /* longest full canonical decomposition */" % max_decomp,
    ]
    out += c_array("uint32_t", "arwkv__uni_class", [(s << 2) | v for s, v in class_t], 10, "0x%x")
    out += c_array("uint32_t", "arwkv__uni_nfc", [(s << 10) | v for s, v in nfc_t], 10, "0x%x")
    out += c_array("uint64_t", "arwkv__uni_decomp", dec_words, 5, "0x%xull")
    out += c_array("uint16_t", "arwkv__uni_compose", comp_index, 14, "%d")
    out.append(END)
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ucd", default="/usr/share/unicode")
    ap.add_argument("--header", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "arwkv.h"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    block = generate(args.ucd)
    with open(args.header, encoding="utf-8") as f:
        text = f.read()
    a = text.find(BEGIN)
    b = text.find(END)
    if a < 0 or b < a:
        sys.exit("gen_unicode: %s has no '%s' ... '%s' block" % (args.header, BEGIN, END))
    b = text.index("\n", b) + 1
    new = text[:a] + block + text[b:]
    if args.check:
        if new != text:
            sys.exit("gen_unicode: the tables in %s are stale; run python3 tools/gen_unicode.py" % args.header)
        print("gen_unicode: tables up to date")
        return
    if new != text:
        with open(args.header, "w", encoding="utf-8") as f:
            f.write(new)
    print("gen_unicode: wrote %d bytes of tables into %s" % (len(block), args.header))


if __name__ == "__main__":
    main()
