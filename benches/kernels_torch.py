"""The rows of `cargo xtask bench kernels` timed in PyTorch (run by hand, in a venv with torch):
matmul (f32 and bf16), softmax forward and backward, layer norm, cross-entropy forward+backward and causal
scaled_dot_product_attention (forward, forward+backward), on 1 and 2 threads, as JSON records of
the same form, which `cargo xtask bench kernels --torch FILE` puts in its table. Run the two in
one sitting: this machine drifts between runs.

    /work/refenv/bin/python benches/kernels_torch.py [--quick] > /tmp/torch.json
    cargo xtask bench kernels --torch /tmp/torch.json [--quick]
"""

import json
import sys
import time

import torch
import torch.nn.functional as F


def median_time(fn, rounds, min_sample):
    fn()  # warm-up
    t = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t, 1e-7)
    per = max(1, min(10_000, int(min_sample / once + 0.999)))
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(per):
            fn()
        samples.append((time.perf_counter() - t) / per)
    samples.sort()
    return samples[len(samples) // 2]


def main():
    quick = "--quick" in sys.argv
    rounds, min_sample = (3, 0.02) if quick else (7, 0.05)
    torch.manual_seed(0)
    records = []

    def add(op, shape, threads, secs, work, unit):
        records.append(
            {"op": op, "impl": "torch", "shape": shape, "threads": threads,
             "median_s": secs, "rate": work / secs / 1e9, "unit": unit}
        )

    shapes = [(s, s, s) for s in (64, 128, 256, 512, 1024, 2048)]
    shapes += [(512, 768, 2304), (512, 768, 3072), (512, 3072, 768), (512, 768, 50257), (512, 50257, 768)]
    if quick:
        shapes = [s for s in shapes if s[0] * s[1] * s[2] <= 512 * 768 * 3072]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.no_grad():
            for m, k, n in shapes:
                a, b = torch.randn(m, k), torch.randn(k, n)
                c = torch.empty(m, n)
                secs = median_time(lambda: torch.matmul(a, b, out=c), rounds, min_sample)
                add("matmul", [m, k, n], threads, secs, 2.0 * m * n * k, "GFLOP/s")
            bf_shapes = [(512, 512, 512), (1024, 1024, 1024)]
            if not quick:
                bf_shapes += [(2048, 2048, 2048), (512, 768, 2304), (512, 768, 3072), (512, 3072, 768)]
            for m, k, n in bf_shapes:
                # bf16 operands; PyTorch's CPU bf16 matmul accumulates in f32 and returns bf16.
                a, b = torch.randn(m, k, dtype=torch.bfloat16), torch.randn(k, n, dtype=torch.bfloat16)
                c = torch.empty(m, n, dtype=torch.bfloat16)
                secs = median_time(lambda: torch.matmul(a, b, out=c), rounds, min_sample)
                add("matmul_bf16", [m, k, n], threads, secs, 2.0 * m * n * k, "GFLOP/s")
            for rows, d in ((8192, 1024), (64, 50257)):
                x = torch.randn(rows, d)
                y = torch.empty_like(x)
                secs = median_time(lambda: torch.softmax(x, -1, out=y), rounds, min_sample)
                add("softmax", [rows, d], threads, secs, 8.0 * rows * d, "GB/s")
            rows, d = 8192, 1024
            y = torch.softmax(torch.randn(rows, d), -1)
            dy = torch.randn(rows, d)
            secs = median_time(
                lambda: torch._softmax_backward_data(dy, y, -1, torch.float32), rounds, min_sample
            )
            add("softmax_bwd", [rows, d], threads, secs, 12.0 * rows * d, "GB/s")
            rows, d = 8192, 768
            x, w, b = torch.randn(rows, d), torch.randn(d), torch.randn(d)
            secs = median_time(lambda: F.layer_norm(x, (d,), w, b, 1e-5), rounds, min_sample)
            add("layer_norm", [rows, d], threads, secs, 8.0 * rows * d, "GB/s")
        rows, c = 256, 50257
        logits = torch.randn(rows, c, requires_grad=True)
        targets = torch.tensor([(r * 7919) % c for r in range(rows)])

        def ce():
            logits.grad = None
            F.cross_entropy(logits, targets).backward()

        secs = median_time(ce, rounds, min_sample)
        add("cross_entropy", [rows, c], threads, secs, 8.0 * rows * c, "GB/s")
        bsz, h, t, d = (2, 12, 256, 64) if quick else (4, 12, 512, 64)
        q, k, v = (torch.randn(bsz, h, t, d, requires_grad=True) for _ in range(3))
        fwd = 4.0 * bsz * h * t * t * d
        with torch.no_grad():
            secs = median_time(
                lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), rounds, min_sample
            )
        add("attention_fwd", [bsz, h, t, d], threads, secs, fwd, "GFLOP/s")

        def attn_fwd_bwd():
            for x in (q, k, v):
                x.grad = None
            F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()

        secs = median_time(attn_fwd_bwd, rounds, min_sample)
        add("attention_fwd_bwd", [bsz, h, t, d], threads, secs, 3.0 * fwd, "GFLOP/s")
    json.dump(records, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
