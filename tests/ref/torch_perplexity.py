#!/usr/bin/python3
# Independent perplexity reference: llama.cpp's protocol (text tokenized once with BOS,
# non-overlapping windows of n_ctx tokens whose first token is BOS, only the second half of
# each window scored) over the PyTorch llama2.c model in torch_model.py.
# Usage: torch_perplexity.py MODEL.bin TOKENIZER.bin TEXT_FILE N_CTX  -> prints {"ppl": x, ...}
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_model as tm  # noqa: E402


def main():
    model_path, tok_path, text_path, n_ctx = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    cfg, w = tm.load_llama2c(model_path)
    vocab, scores = tm.load_llama2c_tokenizer(tok_path, cfg["vocab"])
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    tokens = tm.llama2c_encode(text, vocab, scores)  # BOS + text
    n_chunks = len(tokens) // n_ctx
    first = n_ctx // 2
    nll_sum, count, chunk_ppl = 0.0, 0, []
    for c in range(n_chunks):
        window = tokens[c * n_ctx:(c + 1) * n_ctx]
        fed = [1] + window[1:]
        logits = tm.llama2c_forward(cfg, w, fed).double()
        logp = torch.log_softmax(logits, dim=-1)
        for j in range(first, n_ctx - 1):
            nll_sum += -float(logp[j, window[j + 1]])
            count += 1
        chunk_ppl.append(math.exp(nll_sum / count))
    print(json.dumps({"ppl": math.exp(nll_sum / count), "n_tokens": len(tokens),
                      "n_chunks": n_chunks, "count": count, "chunk_ppl": chunk_ppl}))


if __name__ == "__main__":
    main()
