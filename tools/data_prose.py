#!/usr/bin/env python3
"""English prose and technical text from the documentation a Debian machine already has.

    python3 tools/data_prose.py --out DIR [--roots /usr/share/man /usr/share/doc ...]
                                [--heldout-percent 5] [--max-mb 200] [--min-chars 400]

Walks the roots for manual pages (troff, usually gzipped) and documentation files (README, *.txt,
*.md, *.rst, changelogs; gzipped or not), turns each into plain text, and writes JSON lines of
{"text": ...} documents, the input arwkv-distill and arwkv-eval read:
    DIR/train.jsonl     the training documents
    DIR/heldout.jsonl   the held-out documents
    DIR/heldout.txt     the held-out documents as one plain text (arwkv-eval --text)
    DIR/stats.json      files seen, kept, skipped (by reason), bytes per split
The split is by file and fixed: a file is held out when a hash of its path (relative to its root)
falls in the first PERCENT of 100 buckets, so the held-out set never shares a document with the
training set and stays the same across runs and machines. Exact duplicates (the same text installed
by several packages) are kept once. Files that are not mostly English text (binary, code, tables,
licence texts) are skipped. Only the Python standard library.
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import sys

DOC_NAMES = re.compile(r"^(readme|news|changes|changelog|todo|faq|authors|thanks|install|usage|history|bugs|notes)([._-].*)?$", re.I)
DOC_EXTS = (".txt", ".md", ".rst", ".text", ".debian")


def kind_of(path):
    """'man', 'doc' or None (not a document we read)."""
    name = os.path.basename(path)
    if name.endswith(".gz"):
        name = name[:-3]
    if "/man/" in path.replace(os.sep, "/") and re.search(r"\.\d[a-z]*$", name):
        # English pages only: .../man/man1/x.1, not the translations in .../man/de/man1/x.1
        return "man" if re.match(r"^man\w*$", os.path.basename(os.path.dirname(path))) and \
            not re.search(r"/man/[a-z]{2}([_.@][^/]*)?/", path.replace(os.sep, "/")) else None
    low = name.lower()
    if low.startswith("copyright") or low.startswith("license") or low.startswith("copying"):
        return None  # licence texts: the same few texts thousands of times
    if low.endswith(DOC_EXTS) or DOC_NAMES.match(low):
        return "doc"
    return None


def read_bytes(path, limit):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read(limit)


TROFF_ESCAPES = re.compile(r"\\f(\[[^\]]*\]|\(..|.)|\\s[+-]?\d+|\\\*(\[[^\]]*\]|\(..|.)|\\[&|^%:c]")
TROFF_CHARS = {r"\-": "-", r"\(em": "--", r"\(en": "-", r"\(aq": "'", r"\(dq": '"', r"\(lq": '"', r"\(rq": '"', r"\(bu": "*",
               r"\(co": "(c)", r"\e": "\\", r"\ ": " ", r"\~": " ", r"\0": " "}


def troff_clean(line):
    """Special characters spelled out, font and size escapes dropped."""
    for k, v in TROFF_CHARS.items():
        line = line.replace(k, v)
    return TROFF_ESCAPES.sub("", line).replace("\\", "")


def man_to_text(src):
    """Manual-page troff to plain text: filled paragraphs joined into lines, section headings and
    no-fill blocks (.nf/.fi: examples) kept, other requests and font escapes dropped."""
    out, para, fill = [], [], True

    def flush():
        if para:
            out.append(" ".join(para))
            para.clear()

    for line in src.splitlines():
        if line.startswith(('.\\"', "'\\\"", '\\"')):
            continue  # comment
        if line.startswith((".", "'")):
            m = re.match(r"^[.']\s*([A-Za-z]+)\s*(.*)$", line)
            req, arg = (m.group(1), troff_clean(m.group(2))) if m else ("", "")
            if req in ("SH", "SS", "Sh", "Ss"):
                flush()
                out.append("")
                out.append(arg.strip('"').title())
            elif req in ("PP", "P", "LP", "Pp", "TP", "HP", "IP", "sp", "br", "Bl", "El"):
                flush()
                if req != "br":
                    out.append("")
            elif req == "nf":
                flush()
                fill = False
            elif req == "fi":
                fill = True
            elif arg and req in ("B", "I", "Nm", "Ar", "Fl", "Xr", "It", "Nd", "Op"):  # one font: the words as they are
                para.append(" ".join(w.strip('"') for w in re.findall(r'"[^"]*"|\S+', arg)))
            elif arg and req in ("BR", "RB", "IR", "RI", "BI", "IB"):  # alternating fonts (.BR foo (1)): the words run together
                para.append("".join(w.strip('"') for w in re.findall(r'"[^"]*"|\S+', arg)))
            continue
        line = troff_clean(line)
        if not fill:
            out.append(line)
        elif line.strip():
            para.append(line.strip())
        else:
            flush()
            out.append("")
    flush()
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def looks_like_english(text):
    """Mostly letters and spaces, lines of prose length, and common English words."""
    if not text:
        return False
    letters = sum(c.isalpha() or c.isspace() for c in text)
    if letters < 0.8 * len(text):
        return False
    words = re.findall(r"[A-Za-z]+", text.lower())
    if len(words) < 50:
        return False
    common = sum(w in ("the", "and", "of", "to", "is", "in", "a", "for", "this", "that", "with", "be", "are", "by", "it") for w in words)
    return common >= 0.08 * len(words)


def bucket(rel):
    return int(hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest()[:8], 16) % 100


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--roots", nargs="+", default=["/usr/share/man", "/usr/share/doc"])
    ap.add_argument("--heldout-percent", type=int, default=5)
    ap.add_argument("--max-mb", type=float, default=200, help="stop after this much text in all")
    ap.add_argument("--min-chars", type=int, default=400)
    ap.add_argument("--max-file-kb", type=int, default=512, help="read at most this much of one file")
    a = ap.parse_args()
    if not 0 < a.heldout_percent < 100:
        sys.exit("data_prose.py: --heldout-percent must be between 1 and 99")
    roots = [r for r in a.roots if os.path.isdir(r)]
    if not roots:
        sys.exit("data_prose.py: none of the roots exists: %s (install documentation, or build the data on a machine that has it)" % " ".join(a.roots))
    os.makedirs(a.out, exist_ok=True)
    stats = {"roots": roots, "files_seen": 0, "kept": {"train": 0, "heldout": 0}, "bytes": {"train": 0, "heldout": 0},
             "skipped": {"not_a_document": 0, "unreadable": 0, "not_english": 0, "too_short": 0, "duplicate": 0}}
    seen = set()
    total, limit = 0, int(a.max_mb * 1e6)
    files = []
    for root in roots:
        for d, subdirs, names in os.walk(root):
            subdirs.sort()
            for n in sorted(names):
                p = os.path.join(d, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    files.append((root, p))
    outs = {s: open(os.path.join(a.out, s + ".jsonl.tmp"), "w", encoding="utf-8") for s in ("train", "heldout")}
    heldout_txt = open(os.path.join(a.out, "heldout.txt.tmp"), "w", encoding="utf-8")
    for root, p in files:
        if total >= limit:
            break
        stats["files_seen"] += 1
        kind = kind_of(p)
        if not kind:
            stats["skipped"]["not_a_document"] += 1
            continue
        try:
            raw = read_bytes(p, a.max_file_kb * 1024)
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
            stats["skipped"]["unreadable"] += 1
            continue
        if kind == "man":
            text = man_to_text(text)
        text = text.replace("\r\n", "\n").strip()
        if len(text) < a.min_chars:
            stats["skipped"]["too_short"] += 1
            continue
        if not looks_like_english(text):
            stats["skipped"]["not_english"] += 1
            continue
        h = hashlib.sha256(text.encode()).digest()
        if h in seen:
            stats["skipped"]["duplicate"] += 1
            continue
        seen.add(h)
        rel = os.path.relpath(p, root)
        split = "heldout" if bucket(rel) < a.heldout_percent else "train"
        outs[split].write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
        if split == "heldout":
            heldout_txt.write(text + "\n\n")
        stats["kept"][split] += 1
        stats["bytes"][split] += len(text.encode())
        total += len(text.encode())
    for f in list(outs.values()) + [heldout_txt]:
        f.close()
    for s in ("train", "heldout"):  # whole files only: a stopped run leaves no half-written data
        os.replace(os.path.join(a.out, s + ".jsonl.tmp"), os.path.join(a.out, s + ".jsonl"))
    os.replace(os.path.join(a.out, "heldout.txt.tmp"), os.path.join(a.out, "heldout.txt"))
    with open(os.path.join(a.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print("data_prose.py: %d files seen; kept %d training (%.1f MB) and %d held-out (%.1f MB) documents" % (
        stats["files_seen"], stats["kept"]["train"], stats["bytes"]["train"] / 1e6, stats["kept"]["heldout"], stats["bytes"]["heldout"] / 1e6))
    if stats["kept"]["train"] == 0 or stats["kept"]["heldout"] == 0:
        sys.exit("data_prose.py: a split is empty: give more roots or a larger --heldout-percent")


if __name__ == "__main__":
    main()
