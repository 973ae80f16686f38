"""PyTorch eager reference for `cargo xtask bench train-step`: the same GPT-2 124M step (random
init, AdamW, f32, B=4, T=64 and 128) timed on the same machine.

    python3 -m venv v && v/bin/pip install torch transformers
    v/bin/python benches/train_step_torch.py [--threads 2] [--steps 5]
"""

import argparse
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=torch.get_num_threads())
p.add_argument("--steps", type=int, default=5)
p.add_argument("--batch", type=int, default=4)
p.add_argument("--seq", default="64,128")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(attn_implementation="eager"))
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
n = sum(p.numel() for p in model.parameters())
print(f"torch {torch.__version__}: GPT-2 124M ({n} parameters), AdamW, f32, {a.threads} threads")
for t in [int(s) for s in a.seq.split(",")]:
    ids = torch.randint(0, 50257, (a.batch, t))
    times = []
    for i in range(a.steps + 2):
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"B={a.batch} T={t}: {med * 1e3:.0f} ms/step (median of {a.steps}; min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f}), {a.batch * t / med:.0f} tokens/s")
