# Independent reference for llama2.c's tokenizer.bin encode/decode (the algorithm of run.c:
# UTF-8 code points or byte fallback, then repeatedly merge the best-scoring adjacent pair).
# usage: llama2c_tok.py tokenizer.bin vocab_size < texts.json > {"ids": [...], "text": [...]}
import json
import struct
import sys


def load(path, vocab_size):
    with open(path, "rb") as f:
        data = f.read()
    off = 4  # max_token_length
    vocab, scores = [], []
    for _ in range(vocab_size):
        score, n = struct.unpack_from("<fi", data, off)
        off += 8
        vocab.append(data[off:off + n])
        off += n
        scores.append(score)
    return vocab, scores


def encode(text, vocab, scores, lookup):
    tokens = [1]  # BOS
    if text:
        tokens.append(lookup[b" "])  # dummy prefix
    raw = text.encode("utf-8")
    buf = b""
    for i, c in enumerate(raw):
        if c & 0xC0 != 0x80:
            buf = b""
        buf += bytes([c])
        if i + 1 < len(raw) and raw[i + 1] & 0xC0 == 0x80 and len(buf) < 4:
            continue
        if buf in lookup:
            tokens.append(lookup[buf])
        else:
            tokens.extend(b + 3 for b in buf)
        buf = b""
    while True:
        best = (-1e10, -1, -1)
        for i in range(len(tokens) - 1):
            tid = lookup.get(vocab[tokens[i]] + vocab[tokens[i + 1]], -1)
            if tid != -1 and scores[tid] > best[0]:
                best = (scores[tid], tid, i)
        if best[2] == -1:
            break
        tokens[best[2]:best[2] + 2] = [best[1]]
    return tokens


def decode(ids, vocab):
    out = b""
    prev = -1
    for t in ids:
        piece = vocab[t]
        if prev == 1 and piece.startswith(b" "):
            piece = piece[1:]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            piece = bytes([int(piece[3:5], 16)])
        if t not in (1, 2):
            out += piece
        prev = t
    return out.decode("utf-8", errors="replace")


def main():
    vocab, scores = load(sys.argv[1], int(sys.argv[2]))
    lookup = {}
    for i, v in enumerate(vocab):
        lookup.setdefault(v, i)
    texts = json.load(sys.stdin)
    ids = [encode(t, vocab, scores, lookup) for t in texts]
    json.dump({"ids": ids, "text": [decode(x, vocab) for x in ids]}, sys.stdout)


main()
