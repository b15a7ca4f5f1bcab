"""DITTO and DITTO-2: checkpointed gradients equal plain ones, the loss goes down, the trace is
complete, and bad input is reported clearly."""

import pytest
import torch

from ditto2_nb.core.config import NetConfig
from ditto2_nb.diffusion import Denoiser, get_sampler, guided, karras_sigmas
from ditto2_nb.distill import ConsistencyModel, CTMModel
from ditto2_nb.optimize import (
    OptimConfig,
    checkpointed,
    ditto,
    ditto2,
    into_trust_region,
    project_to_shell,
    typical_set_penalty,
)

TINY = NetConfig(n_mels=8, channels=(8, 16), blocks=1, emb_dim=16, attn_heads=2, tag_vocab=(3,))


def teacher():
    torch.manual_seed(0)
    t = Denoiser(TINY)
    for p in t.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return t.eval().requires_grad_(False)


def brightness_loss(target: float):
    """Per-example squared distance of the mean mel level to a target (a toy control)."""
    return lambda mel: (mel.mean(dim=(1, 2)) - target) ** 2


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_checkpointed_gradient_equals_plain(sampler):
    t, tags = teacher(), torch.tensor([[1], [2]])
    sigmas = karras_sigmas(6)
    z = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(1))
    grads = []
    for wrap in (lambda d: d, checkpointed):
        zz = z.clone().requires_grad_()
        x0 = get_sampler(sampler)(wrap(guided(t, tags, 2.0)), zz * sigmas[0], sigmas)
        (x0**2).mean().backward()
        grads.append(zz.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)
    assert grads[0].abs().sum() > 0


def test_ditto_reduces_the_loss_and_traces():
    t, tags = teacher(), torch.tensor([[1], [2]])
    z0 = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(2))
    cfg = OptimConfig(iterations=15, lr=0.1, snapshot_every=5)
    res = ditto(t, brightness_loss(0.3), z0, tags, steps=4, cfg=cfg)
    tr = res.trace
    assert tr.loss[-1] < 0.5 * tr.loss[0]
    assert len(tr.loss) == len(tr.seconds) == len(tr.nfe) == 15
    # per Euler step: one forward pass plus its recomputation in the checkpointed backward
    assert tr.nfe[0] == 8 and tr.nfe[-1] == 120
    assert [s[0] for s in tr.snapshots] == [0, 5, 10, 14]
    assert res.x0.shape == z0.shape


@pytest.mark.parametrize("kind", ["cm", "ctm"])
def test_ditto2_reduces_the_loss_and_decodes(kind):
    t = teacher()
    student = (ConsistencyModel if kind == "cm" else CTMModel).from_teacher(t).eval()
    student.requires_grad_(False)
    z0 = torch.randn(3, 8, 16, generator=torch.Generator().manual_seed(3))
    tags = torch.tensor([[1], [2], [1]])
    cfg = OptimConfig(iterations=20, lr=0.3, refine_last=5, snapshot_every=0)
    res = ditto2(student, brightness_loss(0.2), z0, tags, decode_steps=2, sigma_mid=0.3, cfg=cfg)
    tr = res.trace
    assert tr.loss[14] < 0.8 * tr.loss[0]  # through the 1-step surrogate (measured ~0.76)
    assert tr.loss[-1] < tr.loss[15]  # and then through the 2-step decode itself
    assert tr.through_decode == [False] * 15 + [True] * 5
    assert tr.nfe[14] == 15 and tr.nfe[-1] == 15 + 2 * 5  # 1 per surrogate, 2 per decode
    assert res.x0.shape == res.x0_surrogate.shape == z0.shape
    again = ditto2(student, brightness_loss(0.2), z0, tags, decode_steps=2, sigma_mid=0.3, cfg=cfg)
    torch.testing.assert_close(res.x0, again.x0, rtol=0, atol=0)  # deterministic by seed


def test_typical_set_penalty():
    z = torch.randn(4, 64, 128, generator=torch.Generator().manual_seed(0))
    assert typical_set_penalty(z).max() < 1e-3
    assert typical_set_penalty(3 * z).min() > 3


def test_shell_and_trust_region_projections():
    g = torch.Generator().manual_seed(0)
    z0, z = torch.randn(3, 8, 16, generator=g), 2.5 * torch.randn(3, 8, 16, generator=g)
    d = 8 * 16
    torch.testing.assert_close(project_to_shell(z).flatten(1).norm(dim=1), torch.full((3,), d**0.5))
    pulled = into_trust_region(z, z0, 0.5)
    torch.testing.assert_close((pulled - z0).flatten(1).norm(dim=1), torch.full((3,), 0.5 * d**0.5))
    near = z0 + 0.01 * z  # already inside: unchanged
    torch.testing.assert_close(into_trust_region(near, z0, 0.5), near, rtol=0, atol=0)


def test_ditto2_stays_on_the_shell_and_in_the_trust_region():
    t = teacher()
    student = CTMModel.from_teacher(t).eval().requires_grad_(False)
    z0 = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(3))
    tags = torch.tensor([[1], [2]])
    free = OptimConfig(iterations=15, lr=0.3, snapshot_every=0)
    held = OptimConfig(iterations=15, lr=0.3, snapshot_every=0, project=True, trust_radius=0.2)
    moved = {}
    for name, cfg in (("free", free), ("held", held)):
        res = ditto2(student, brightness_loss(0.2), z0, tags, cfg=cfg)
        moved[name] = (res.z - z0).flatten(1).norm(dim=1) / (8 * 16) ** 0.5
        if name == "held":
            torch.testing.assert_close(res.z.flatten(1).norm(dim=1) / (8 * 16) ** 0.5, torch.ones(2))
            assert res.trace.loss[-1] < res.trace.loss[0]  # still optimises
    assert (moved["free"] > 0.3).all()  # without the region the noise moves further
    assert (moved["held"] < 0.2 + 0.02).all()  # the shell projection moves it by at most a little


def test_bad_inputs_are_reported():
    t = teacher()
    with pytest.raises(ValueError, match=r"\[B, n_mels, frames\]"):
        ditto(t, brightness_loss(0), torch.zeros(8, 16), cfg=OptimConfig(iterations=1))
    with pytest.raises(ValueError, match="NaN"):
        ditto(t, brightness_loss(0), torch.full((1, 8, 16), float("nan")),
              cfg=OptimConfig(iterations=1))
    with pytest.raises(FloatingPointError, match="control loss is NaN/inf.*target"):
        ditto(t, lambda m: m.mean(dim=(1, 2)) * float("nan"), torch.zeros(1, 8, 16), steps=2,
              cfg=OptimConfig(iterations=2))
    with pytest.raises(ValueError, match="one loss per example"):
        ditto(t, lambda m: m.mean(), torch.zeros(2, 8, 16), steps=2, cfg=OptimConfig(iterations=1))
    with pytest.raises(ValueError, match="deterministic"):
        ditto(t, brightness_loss(0), torch.zeros(1, 8, 16), sampler="ancestral")


def test_checkpointing_keeps_activation_memory_flat_in_steps():
    """Autograd's saved tensors grow with S without checkpointing; with it, only the per-step
    inputs are kept (a small fraction)."""
    from ditto2_nb.core.metrics import saved_for_backward_mb

    t = teacher()
    z = torch.randn(2, 8, 16, requires_grad=True)

    def saved(steps, ckpt):
        sigmas = karras_sigmas(steps, t.sigma_min, t.sigma_max)
        denoise = guided(t, torch.ones(2, 1, dtype=torch.long), 2.0)
        fn = checkpointed(denoise) if ckpt else denoise
        return saved_for_backward_mb(lambda: get_sampler("euler")(fn, z * sigmas[0], sigmas))[0]

    plain = [saved(s, False) for s in (4, 8, 16)]
    ckpt = [saved(s, True) for s in (4, 8, 16)]
    assert plain[2] > 1.5 * plain[0]  # grows with S
    assert all(c < 0.25 * p for c, p in zip(ckpt, plain))


def test_callback_sees_every_iteration():
    t, seen = teacher(), []
    ditto(t, brightness_loss(0.2), torch.randn(1, 8, 16), steps=3,
          cfg=OptimConfig(iterations=4, snapshot_every=0),
          callback=lambda it, trace, mel: seen.append((it, len(trace.loss), tuple(mel.shape))))
    assert seen == [(i, i + 1, (1, 8, 16)) for i in range(4)]


def test_noise_adam_equals_torch_adam_bit_for_bit():
    """The loop's written-out Adam gives torch.optim.Adam's iterates exactly (same arithmetic)."""
    from ditto2_nb.optimize.loop import NoiseAdam

    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(2, 8, 16, generator=g)
    ours, ref = z0.clone().requires_grad_(True), z0.clone().requires_grad_(True)
    a, b = NoiseAdam(ours, lr=0.05), torch.optim.Adam([ref], lr=0.05)
    for _ in range(40):
        grad = torch.randn(z0.shape, generator=g) * 3
        a.zero_grad()
        b.zero_grad()
        ours.grad, ref.grad = grad.clone(), grad.clone()
        a.step()
        b.step()
        assert torch.equal(ours, ref)


def test_one_tag_row_is_broadcast_for_guidance():
    """Issue 25, item 1: a single tag row for a batch works with CFG (w != 1) in generate, DITTO
    and DITTO-2, and equals the expanded tags."""
    from ditto2_nb.diffusion import generate

    t = teacher()
    one, many = torch.tensor([[2]]), torch.tensor([[2]] * 3)
    torch.testing.assert_close(generate(t, 3, 16, steps=3, tags=one, w=2.0),
                               generate(t, 3, 16, steps=3, tags=many, w=2.0))
    z0 = torch.randn(3, 8, 16, generator=torch.Generator().manual_seed(0))
    cfg = OptimConfig(iterations=2, snapshot_every=0)
    a = ditto(t, brightness_loss(0.1), z0, one, steps=3, w=2.0, cfg=cfg)
    b = ditto(t, brightness_loss(0.1), z0, many, steps=3, w=2.0, cfg=cfg)
    torch.testing.assert_close(a.x0, b.x0)
    student = CTMModel.from_teacher(t)
    c = ditto2(student, brightness_loss(0.1), z0, torch.tensor([2]), cfg=cfg)
    d = ditto2(student, brightness_loss(0.1), z0, many, cfg=cfg)
    torch.testing.assert_close(c.x0, d.x0)


def test_snapshot_pairs_each_output_with_the_z_that_made_it():
    """A snapshot's mel is the method's output for the snapshot's z (z before that iteration's
    Adam step), for DITTO-2's 1-step surrogate."""
    from ditto2_nb.distill import student_decode

    student = ConsistencyModel.from_teacher(teacher())
    z0 = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(0))
    res = ditto2(student, brightness_loss(0.2), z0, torch.tensor([[1], [2]]),
                 cfg=OptimConfig(iterations=5, lr=0.2, snapshot_every=2))
    assert [it for it, _, _ in res.trace.snapshots] == [0, 2, 4]
    torch.testing.assert_close(res.trace.snapshots[0][1], z0)
    for _, z, mel in res.trace.snapshots:
        with torch.no_grad():
            again = student_decode(student, z * student.sigma_max, 1, torch.tensor([[1], [2]]))
        torch.testing.assert_close(mel, again)


@pytest.mark.parametrize("kind", ["cm", "ctm"])
def test_an_examples_decode_does_not_depend_on_its_batch(kind):
    """The decode's injected noise is drawn per example (row k from seed + k), as z is: the first
    example decodes the same alone as in a batch of four; and the noise is not z's own stream."""
    from ditto2_nb.diffusion import seeded_noise
    from ditto2_nb.distill import student_decode

    student = (ConsistencyModel if kind == "cm" else CTMModel).from_teacher(teacher())
    z = seeded_noise(range(4), (8, 16)) * student.sigma_max
    tags = torch.tensor([[1], [2], [1], [2]])
    with torch.no_grad():
        batch = student_decode(student, z, 3, tags, gamma=0.5, seed=3)
        alone = student_decode(student, z[:1], 3, tags[:1], gamma=0.5, seed=3)
        other_seed = student_decode(student, z[:1], 3, tags[:1], gamma=0.5, seed=4)
    torch.testing.assert_close(alone, batch[:1])
    assert (other_seed - alone).abs().max() > 1e-3  # the seed does set the injected noise


def test_generate_with_ancestral_noise_is_per_example():
    from ditto2_nb.diffusion import generate

    t = teacher()
    batch = generate(t, 3, 16, steps=4, sampler="ancestral", seed=10)
    alone = generate(t, 1, 16, steps=4, sampler="ancestral", seed=11)
    torch.testing.assert_close(alone, batch[1:2])
