"""The ``logps_from_logits`` workload of ``fastalign bench`` (``--only logps_from_logits``)."""

from __future__ import annotations

from collections.abc import Callable

from fastalign.bench._harness import Row, have, time_median


def run(size: str) -> list[Row]:
    """Selective log-softmax on materialized logits, forward + backward with an arbitrary
    upstream gradient; error = max normwise relative error of logps and dlogits vs float64."""
    import torch

    import fastalign
    from fastalign.reference.logprobs import logps_from_logits as ref_fn

    n, v = {"quick": (256, 8_000), "default": (2_048, 32_000), "full": (8_192, 128_256)}[size]
    repeat = {"quick": 3, "default": 5, "full": 3}[size]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(n, v, generator=gen) * 3).to(device)
    labels = torch.randint(0, v, (n,), generator=gen).to(device)
    labels[: n // 8] = -100
    grad = torch.randn(n, generator=gen).to(device)

    x64 = logits.double().requires_grad_(True)
    want = ref_fn(x64, labels)
    (dwant,) = torch.autograd.grad(want, x64, grad.double())
    want = want.detach()
    del x64

    def err_of(out: torch.Tensor, dx: torch.Tensor) -> float:
        def rel(a: torch.Tensor, b: torch.Tensor) -> float:
            return float((a.double() - b).abs().max() / b.abs().max())

        return max(rel(out, want), rel(dx, dwant))

    def make(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], tuple]:
        def step() -> tuple:
            x = logits.detach().requires_grad_(True)
            out = fn(x)
            (dx,) = torch.autograd.grad(out, x, grad.to(out.dtype))
            if device == "cuda":
                torch.cuda.synchronize()
            return out.detach(), dx

        return step

    impls: list[tuple[str, Callable[[torch.Tensor], torch.Tensor], bool]] = [
        ("naive torch (log_softmax + gather)", lambda x: ref_fn(x, labels), True),
        (
            "fastalign torch (chunked)",
            lambda x: fastalign.logps_from_logits(x, labels, backend="torch"),
            False,
        ),
    ]
    if device == "cuda" and have("triton"):
        impls.append(
            (
                "fastalign triton",
                lambda x: fastalign.logps_from_logits(x, labels, backend="triton"),
                False,
            )
        )
    if have("trl"):
        try:
            from trl.trainer.utils import selective_log_softmax as trl_sls
        except ImportError:  # pragma: no cover - depends on the installed TRL
            trl_sls = None
        if trl_sls is not None:

            def trl_fn(x: torch.Tensor) -> torch.Tensor:
                safe = labels.clamp(min=0)
                return torch.where(labels != -100, trl_sls(x, safe), 0.0)

            impls.append(("TRL selective_log_softmax", trl_fn, False))

    rows = []
    wl = f"N={n:,} V={v:,} fp32 {device}"
    for name, fn, is_base in impls:
        try:
            t, (out, dx) = time_median(make(fn), repeat=repeat)
            rows.append(
                Row(
                    "logps_from_logits",
                    wl,
                    name,
                    t,
                    baseline=is_base,
                    max_err=err_of(out, dx),
                    tol=1e-4,
                )
            )
        except Exception as e:  # a peer that breaks is reported, not fatal
            rows.append(Row("logps_from_logits", wl, name, None, error=f"{type(e).__name__}: {e}"))
    return rows
