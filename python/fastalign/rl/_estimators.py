"""GAE, discounted returns and the KL estimators (see :mod:`fastalign.rl`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastalign._validate import (
    check_choice,
    check_float_tensor,
    check_range,
    check_scan,
    check_tensor,
)
from fastalign.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

KL_KINDS = ("k1", "k2", "k3", "abs")
KL_CLAMPS = ("verl", "openrlhf")


SCAN_BACKENDS = ("auto", "triton", "rust", "reference")


def _scan(
    rewards: torch.Tensor,
    values: torch.Tensor | None,
    mask: torch.Tensor,
    last_values: torch.Tensor | None,
    gamma: float,
    lam: float,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The scan, on the input's device and dtype: the Triton kernel (CUDA tensors, or the CPU
    under TRITON_INTERPRET=1), the Rust scan over CPU buffers (float32 / float64; float16 and
    bfloat16 via float32; other devices copied through the CPU), or the reference loop."""
    import torch

    from fastalign import _backend, _core

    backend = check_choice(backend, "backend", SCAN_BACKENDS)
    device, dtype = rewards.device, rewards.dtype
    if backend == "auto":
        use_triton = device.type == "cuda" and _backend.triton_installed()
        backend = "triton" if use_triton else "rust"
    if backend == "reference":
        from fastalign.reference.rl import gae_loop

        v = torch.zeros_like(rewards) if values is None else values
        return gae_loop(rewards.detach(), v.detach(), mask, gamma, lam, last_values)
    m8 = (mask.detach() != 0).to(torch.uint8)
    if backend == "triton":
        _backend.resolve("triton", device.type)  # CUDA or the interpreter, else a clear error
        from fastalign.kernels import rl_scan

        def dev(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.detach().contiguous()

        adv, ret = rl_scan.gae(dev(rewards), dev(values), m8.contiguous(), dev(last_values),
                               gamma, lam)  # fmt: skip
        return adv.to(dtype), ret.to(dtype)
    work = torch.float64 if dtype == torch.float64 else torch.float32

    def host(t: torch.Tensor | None) -> object:
        if t is None:
            return None
        return t.detach().to("cpu", work).contiguous().numpy()

    fn = _core.rl_gae_f64 if work == torch.float64 else _core.rl_gae_f32
    adv, ret = fn(host(rewards), host(values), m8.cpu().contiguous().numpy(),
                  host(last_values), gamma, lam)  # fmt: skip
    back = [torch.from_numpy(x).to(device, dtype) for x in (adv, ret)]
    return back[0], back[1]


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    gamma: float = 1.0,
    lam: float = 1.0,
    last_values: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016) over the valid tokens.

    ``delta_t = r_t + gamma * V' - V_t`` and ``A_t = delta_t + gamma * lam * A'``, where
    ``V'`` and ``A'`` belong to the next *valid* token (masked tokens in between are skipped),
    and past a row's last valid token ``V'`` is ``last_values[b]`` (bootstrap at truncation)
    or 0 and ``A'`` is 0. ``returns = advantages + values``. Both are 0 where ``mask`` is 0.
    On valid tokens this equals verl's ``compute_gae_advantage_return`` before its whitening.

    O(B T), never a Python loop over T: on CUDA a Triton kernel (a reverse parallel scan
    of affine maps per row, float64 arithmetic), on CPU one reverse scan per row in Rust
    (float64 arithmetic, ~2 ns a token). ``backend``: ``"auto"`` (those two), ``"triton"``,
    ``"rust"`` (other devices copied through the CPU) or ``"reference"`` (the loop over T).

    Args:
        rewards, values, mask: ``[B, T]``; mask non-zero where a token is valid.
        gamma: discount, finite and >= 0. lam: GAE's lambda in [0, 1].
        last_values: ``[B]`` values to bootstrap from, or None (0: the episode ended).

    Returns:
        ``(advantages, returns)``, ``[B, T]`` each, in ``rewards``' dtype and device.

    Raises:
        InvalidInputError: NaN / inf rewards or values on a valid token (named), or gamma /
        lam out of range. ShapeError / TypeError: shapes or types that do not fit.

    Example:
        >>> import torch
        >>> r = torch.tensor([[1.0, 0.0, 2.0, 0.0]]); v = torch.tensor([[0.5, 9.0, 1.0, 0.0]])
        >>> m = torch.tensor([[1, 0, 1, 0]])  # token 1 is a gap, token 3 padding
        >>> adv, ret = gae(r, v, m, gamma=1.0, lam=1.0)
        >>> adv, ret
        (tensor([[2.5000, 0.0000, 1.0000, 0.0000]]), tensor([[3., 0., 2., 0.]]))
    """
    check_scan(rewards, values, mask, last_values)
    if values is None:
        raise TypeError("values must be a torch.Tensor, not None (discounted_returns needs none)")
    g = check_range(gamma, "gamma", 0.0, float("inf"))
    lm = check_range(lam, "lam", 0.0, 1.0, hi_open=False)
    return _scan(rewards, values, mask, last_values, g, lm, backend)


def discounted_returns(
    rewards: torch.Tensor, mask: torch.Tensor, *, gamma: float = 1.0, backend: str = "auto"
) -> torch.Tensor:
    """Discounted reward-to-go ``G_t = r_t + gamma * G'`` over the valid tokens (``G'``: the
    next valid token's, 0 past the last); 0 where ``mask`` is 0. The GAE scan with no values
    and ``lam = 1`` (``backend`` as :func:`gae`).

    Example:
        >>> import torch
        >>> discounted_returns(torch.tensor([[1.0, 1.0, 1.0]]), torch.ones(1, 3), gamma=0.5)
        tensor([[1.7500, 1.5000, 1.0000]])
    """
    check_scan(rewards, None, mask, None)
    g = check_range(gamma, "gamma", 0.0, float("inf"))
    return _scan(rewards, None, mask, None, g, 1.0, backend)[0]


def kl(
    logps: torch.Tensor,
    ref_logps: torch.Tensor,
    *,
    kind: str = "k3",
    where: str = "loss",
    grad: str = "naive",
    clamp: str | None = None,
    old_logps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token estimates of KL(pi || pi_ref) from log-probs of tokens sampled from pi
    (Schulman, "Approximating KL divergence", 2020):

    - ``k1 = logp - ref`` (unbiased, high variance, can be negative);
    - ``k2 = (logp - ref)^2 / 2`` (biased, low variance);
    - ``k3 = exp(ref - logp) - (ref - logp) - 1`` (unbiased, >= 0: GRPO's);
    - ``abs = |logp - ref|``.

    ``where="reward"``: the estimate is a reward penalty, returned without a graph.
    ``where="loss"``: with ``grad="naive"`` the gradient is autograd's of the estimate, which
    for k1 is 0 in expectation and for k3 is the gradient of KL(pi_ref || pi), not of
    KL(pi || pi_ref); k2's is the right one. ``grad="unbiased"`` keeps the estimate's value but
    gives every kind the gradient ``w (logp - ref) grad(logp)``, whose expectation over samples
    of the policy that drew them is the gradient of KL(pi || pi_ref) (tested by exact
    enumeration): ``w = 1`` on-policy; with ``old_logps`` (the sampling policy) the detached
    importance weight ``w = exp(logp - old)`` (OpenRLHF's ``unbiased_gradient``; verl's
    ``"k3+"`` is the on-policy case).

    ``clamp`` applies a framework's numerical guards to the value (off by default: exact):

    - ``"verl"`` (``kl_penalty``): k3 from ``ref - logp`` clamped to ``[-20, 20]``, the
      estimate clamped to ``[-10, 10]`` (k1, k2 and abs unclamped);
    - ``"openrlhf"`` (``compute_approx_kl``): k3 from ``logp - ref`` clamped at ``>= -10``;
      every estimate clamped to ``[-10, 10]``; the importance weight ``w`` capped at 10.
      (OpenRLHF has no ``abs``.)

    Example:
        >>> import torch
        >>> lp = torch.tensor([-1.0, -2.0]); ref = torch.tensor([-1.5, -1.0])
        >>> kl(lp, ref, kind="k1"), kl(lp, ref, kind="k3")
        (tensor([ 0.5000, -1.0000]), tensor([0.1065, 0.7183]))
        >>> kl(torch.tensor([-30.0]), torch.tensor([-1.0]), clamp="verl")
        tensor([10.])
    """
    import torch

    check_float_tensor(logps, "logps")
    check_float_tensor(ref_logps, "ref_logps")
    check_tensor(ref_logps, "ref_logps", logps.shape, like="logps")
    kind = check_choice(kind, "kind", KL_KINDS)
    where = check_choice(where, "where", ("loss", "reward"))
    grad = check_choice(grad, "grad", ("naive", "unbiased"))
    if clamp is not None:
        clamp = check_choice(clamp, "clamp", KL_CLAMPS)
        if clamp == "openrlhf" and kind == "abs":
            raise InvalidInputError("OpenRLHF has no 'abs' estimator: clamp='openrlhf' takes k1-k3")
    if where == "reward" and grad != "naive":
        raise InvalidInputError("grad='unbiased' applies to where='loss' (a reward has no graph)")
    if old_logps is not None:
        if grad != "unbiased":
            raise InvalidInputError("old_logps weights the gradient of grad='unbiased'")
        check_tensor(old_logps, "old_logps", logps.shape, like="logps")
    diff = logps - ref_logps
    if kind == "k1":
        est = diff
    elif kind == "k2":
        est = 0.5 * diff * diff
    elif kind == "k3":
        if clamp == "verl":
            d = torch.clamp(-diff, min=-20, max=20)
            est = d.exp() - d - 1.0
        else:
            d = diff.clamp(min=-10) if clamp == "openrlhf" else diff
            est = (-d).exp() + d - 1.0
    else:
        est = diff.abs()
    if clamp == "openrlhf" or (clamp == "verl" and kind == "k3"):
        est = est.clamp(min=-10, max=10)
    if where == "reward":
        return est.detach()
    if grad == "unbiased":
        # value: the estimate; gradient: w (logp - ref) d logp (the score-function form)
        w = diff.detach()
        if old_logps is not None:
            iw = torch.exp(logps.detach() - old_logps.detach())
            w = w * (iw.clamp(max=10.0) if clamp == "openrlhf" else iw)
        return est.detach() + w * (logps - logps.detach())
    return est
