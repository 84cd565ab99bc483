"""The peer's learn step in PyTorch: the same model, batch and losses as
worker/src/model.rs (encoder, student, head, gating over answers, KL
distillation), timed the same way as worker/benches/learn.rs.

    python learn_torch.py TEXT_FILE   (env: BENCH_STEPS, BENCH_BATCH, BENCH_SEQ, BENCH_OUT, BENCH_FANOUT)
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

STEPS = int(os.environ.get("BENCH_STEPS", 30))
BATCH = int(os.environ.get("BENCH_BATCH", 32))
SEQ = int(os.environ.get("BENCH_SEQ", 32))
OUT = int(os.environ.get("BENCH_OUT", 64))
FANOUT = int(os.environ.get("BENCH_FANOUT", 2))
EMBED, HIDDEN, CONTEXT, PAD, SLOTS = 32, 128, 4, 256, 64


def linear(inp, out):
    return [
        (torch.randn(inp, out) * (1.0 / inp) ** 0.5).requires_grad_(),
        torch.zeros(out, requires_grad=True),
    ]


def encoder():
    return [torch.randn(257, EMBED).requires_grad_()] + linear(CONTEXT * EMBED, HIDDEN) + linear(HIDDEN, OUT)


def encode(p, ids):
    emb, w1, b1, w2, b2 = p
    x = torch.cat([emb[ids[c]] for c in range(CONTEXT)], 1)
    return F.relu(x @ w1 + b1) @ w2 + b2


def head(p, g, f):
    w1, b1, w2, b2 = p
    return F.relu(torch.cat([g, f], 1) @ w1 + b1) @ w2 + b2


def shifted(windows):
    x = windows[:, :SEQ].long()
    out = []
    for c in range(CONTEXT):
        s = torch.full_like(x, PAD)
        s[:, c:] = x[:, : SEQ - c] if c > 0 else x
        out.append(s.reshape(-1))
    return out, windows[:, 1:].reshape(-1).long()


def main():
    data = torch.frombuffer(bytearray(open(sys.argv[1], "rb").read()), dtype=torch.uint8)
    torch.manual_seed(7)
    enc, student = encoder(), encoder()
    hd = linear(2 * OUT, HIDDEN) + linear(HIDDEN, 256)
    gating = torch.zeros(SLOTS, OUT, requires_grad=True)
    opt = torch.optim.AdamW(
        [{"params": enc + student + hd, "lr": 3e-3}, {"params": [gating], "lr": 3e-2}],
        weight_decay=0.0,
    )
    n = BATCH * SEQ

    def sample():
        starts = torch.randint(0, len(data) - SEQ - 1, (BATCH,))
        return torch.stack([data[s : s + SEQ + 1] for s in starts.tolist()])

    def answers():
        out = []
        for uid in range(FANOUT + 1):
            rows = [r for r in range(BATCH) if r % (FANOUT + 1) != uid]
            out.append((uid + 1, rows, torch.rand(len(rows), SEQ * OUT) * 2 - 1))
        return out

    def step(windows, ans):
        ids, targets = shifted(windows)
        f = encode(enc, ids)
        st = encode(student, ids)
        if ans:
            vars_ = []
            mask = torch.full((BATCH, len(ans)), -1e9)
            answered = torch.zeros(BATCH)
            for c, (uid, rows, values) in enumerate(ans):
                full = torch.zeros(BATCH, SEQ * OUT)
                full[rows] = values
                vars_.append(full.reshape(n, OUT).requires_grad_())
                mask[rows, c] = 0.0
                answered[rows] = 1.0
            idx = torch.tensor([a[0] for a in ans])
            logits = (f.detach().reshape(BATCH, SEQ, OUT).mean(1) @ gating.t())[:, idx]
            gates = torch.softmax(logits + mask, -1)
            gates = gates.unsqueeze(1).expand(BATCH, SEQ, len(ans)).reshape(n, len(ans), 1)
            remote = (torch.stack(vars_, 1) * gates).sum(1)
            ans_rows = answered.repeat_interleave(SEQ).reshape(n, 1)
            g = remote + st.detach() * (1 - ans_rows)
        else:
            vars_ = []
            g = st.detach()
        logits = head(hd, g, f)
        loss = F.cross_entropy(logits, targets)
        p = torch.softmax(logits.detach(), -1)
        log_p = torch.log_softmax(logits.detach(), -1)
        log_q = torch.log_softmax(head([t.detach() for t in hd], st, f.detach()), -1)
        kl = (p * (log_p - log_q)).sum(1).mean()
        opt.zero_grad()
        (loss + kl).backward()
        grads = [v.grad.reshape(BATCH, SEQ * OUT)[rows].numpy() for v, (_, rows, _) in zip(vars_, ans)]
        opt.step()
        return loss.item(), kl.item(), grads

    step(sample(), answers())

    def timed(with_answers):
        total = 0.0
        for _ in range(STEPS):
            w = sample()
            a = answers() if with_answers else []
            t = time.perf_counter()
            step(w, a)
            total += time.perf_counter() - t
        return STEPS * BATCH * SEQ / total

    ex = timed(True)
    lo = timed(False)
    print(json.dumps({
        "impl": f"pytorch {torch.__version__}", "batch": BATCH, "seq_len": SEQ, "out_dim": OUT,
        "fanout": FANOUT, "steps": STEPS, "threads": torch.get_num_threads(),
        "exchange_tokens_per_s": round(ex), "local_tokens_per_s": round(lo),
    }))


if __name__ == "__main__":
    main()
