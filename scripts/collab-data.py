#!/usr/bin/python3
"""Data of the collaboration experiments, from what `slm data prepare` wrote for the Brown Corpus
(DATA_DIR: tokenizer.gguf, train.bin, val.bin; shards are decoded back to text with their
byte-level BPE tokenizer).

  scripts/collab-data.py prompts DATA_DIR OUT_DIR [--words 10] [--val 200] [--train 400]
      paragraph openings (the first N words of a paragraph) from the validation split (held-out
      prompts for `slm collab eval`) and from the training split (prompts the token router is
      trained on): OUT_DIR/prompts-val.txt, OUT_DIR/prompts-train.txt
  scripts/collab-data.py sentences DATA_DIR OUT [--words 10] [--clauses]
      the openings (first N words) of the sentences inside training-split paragraphs, after each
      paragraph's first sentence and only from sentences of at least N words (more prompts for
      the large model to continue when distilling the small one: scripts/distill-small.sh);
      --clauses: of what follows each comma, semicolon or colon instead
  scripts/collab-data.py news CORPUS DATA_DIR OUT_DIR [--docs 44]
      the press-reportage documents (the first 44 of the Brown Corpus) split into those of the
      training split (OUT_DIR/news-train.txt: proxy tuning's fine-tuning text) and those of the
      validation split (OUT_DIR/news-val.txt: held-out text no model has seen)"""
import argparse, os, re, struct, sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
from gguf_reader import read_gguf  # noqa: E402


def byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def shard_paragraphs(tokenizer, shard):
    meta, _ = read_gguf(tokenizer, load_tensors=False)
    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    dec = byte_decoder()
    data = open(shard, "rb").read()
    width = struct.unpack_from("<I", data, 12)[0]
    count = struct.unpack_from("<Q", data, 32)[0]
    ids = struct.unpack_from("<%d%s" % (count, "H" if width == 2 else "I"), data, 64)
    out = bytearray()
    for i in ids:
        if types[i] == 3:  # control tokens (BOS/EOS/PAD): a document boundary
            out += b"\n"
            continue
        out += bytes(dec[ch] for ch in tokens[i])
    return [line.strip() for line in out.decode("utf-8", "replace").split("\n") if line.strip()]


def openings(paragraphs, words, count):
    """(chosen, rest): the openings of `count` paragraphs evenly spread over the split
    (deterministic), and those of all the other paragraphs, minus any equal to a chosen one."""
    usable = [p.split() for p in paragraphs if len(p.split()) >= 2 * words]
    if len(usable) < count:
        sys.exit("only %d paragraphs of at least %d words, %d wanted" % (len(usable), 2 * words, count))
    step = len(usable) / count
    picked = {int(i * step) for i in range(count)}
    chosen = [" ".join(usable[int(i * step)][:words]) for i in range(count)]
    rest = [" ".join(p[:words]) for i, p in enumerate(usable) if i not in picked]
    return chosen, [r for r in rest if r not in set(chosen)]


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"']?\s+(?=[\"']?[A-Z])")
CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+")


def sentences(a):
    tok = os.path.join(a.data_dir, "tokenizer.gguf")
    out = []
    for p in shard_paragraphs(tok, os.path.join(a.data_dir, "train.bin")):
        if len(p.split()) < 20:
            continue
        for s in (CLAUSE_BREAK if a.clauses else SENTENCE_BREAK).split(p)[1:]:
            w = s.split()
            if len(w) >= a.words:
                out.append(" ".join(w[: a.words]))
    write_atomic(a.out, "\n".join(out) + "\n")
    print("%s: %d prompts" % (a.out, len(out)))


def news(a):
    docs = [d.strip() for d in open(a.corpus, encoding="utf-8").read().split("\n\n") if d.strip()][: a.docs]
    val = set(shard_paragraphs(os.path.join(a.data_dir, "tokenizer.gguf"), os.path.join(a.data_dir, "val.bin")))
    held = [d for d in docs if d.split("\n")[0].strip() in val]
    seen = [d for d in docs if d.split("\n")[0].strip() not in val]
    os.makedirs(a.out_dir, exist_ok=True)
    write_atomic(os.path.join(a.out_dir, "news-train.txt"), "\n\n".join(seen) + "\n")
    write_atomic(os.path.join(a.out_dir, "news-val.txt"), "\n\n".join(held) + "\n")
    print("news: %d documents for tuning, %d held out" % (len(seen), len(held)))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prompts")
    pp.add_argument("data_dir")
    pp.add_argument("out_dir")
    pp.add_argument("--words", type=int, default=10)
    pp.add_argument("--val", type=int, default=200)
    pp.add_argument("--train", type=int, default=400)
    ps = sub.add_parser("sentences")
    ps.add_argument("data_dir")
    ps.add_argument("out")
    ps.add_argument("--words", type=int, default=10)
    ps.add_argument("--clauses", action="store_true")
    pn = sub.add_parser("news")
    pn.add_argument("corpus")
    pn.add_argument("data_dir")
    pn.add_argument("out_dir")
    pn.add_argument("--docs", type=int, default=44)
    a = ap.parse_args()
    if a.cmd == "news":
        return news(a)
    if a.cmd == "sentences":
        return sentences(a)
    tok = os.path.join(a.data_dir, "tokenizer.gguf")
    os.makedirs(a.out_dir, exist_ok=True)
    for split, n in (("val", a.val), ("train", a.train)):
        lines, rest = openings(shard_paragraphs(tok, os.path.join(a.data_dir, split + ".bin")), a.words, n)
        outputs = [("prompts-%s.txt" % split, lines)] + ([("prompts-calib.txt", rest)] if split == "val" else [])
        for name, out in outputs:
            path = os.path.join(a.out_dir, name)
            write_atomic(path, "\n".join(out) + "\n")
            print("%s: %d prompts" % (path, len(out)))


if __name__ == "__main__":
    main()
