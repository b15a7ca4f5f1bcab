"""Consistency and CTM students: boundary identities, jump composition, zero loss at a perfect
student, samplers, and that distillation reduces the loss."""

import pytest
import torch

from ditto2_nb.core.config import DistillConfig, NetConfig
from ditto2_nb.diffusion import Denoiser
from ditto2_nb.distill import (
    ConsistencyModel,
    CTMModel,
    cd_loss,
    cm_multistep,
    ctm_gamma_sample,
    ctm_loss,
)

TINY = NetConfig(n_mels=8, channels=(8, 16), blocks=1, emb_dim=16, attn_heads=2, tag_vocab=(3,))
SD = 0.5


def teacher():
    torch.manual_seed(0)
    t = Denoiser(TINY)
    for p in t.parameters():  # non-zero output layers, so the tests see a real function
        p.data.add_(0.05 * torch.randn_like(p))
    return t.eval().requires_grad_(False)


def test_cm_boundary_is_exact():
    cm = ConsistencyModel.from_teacher(teacher())
    x = torch.randn(3, 8, 16)
    torch.testing.assert_close(cm(x, cm.sigma_min), x, rtol=0, atol=0)


def test_ctm_identity_at_equal_times_and_denoiser_at_zero():
    ctm = CTMModel.from_teacher(teacher())
    x = torch.randn(3, 8, 16)
    torch.testing.assert_close(ctm(x, 2.0, 2.0), x)
    torch.testing.assert_close(ctm(x, 2.0, 0.0), ctm.denoise(x, 2.0, 0.0))


def test_ctm_starts_as_the_teacher():
    t = teacher()
    ctm = CTMModel.from_teacher(t)
    x = torch.randn(2, 8, 16)
    with torch.no_grad():
        torch.testing.assert_close(ctm.denoise(x, 1.5, 0.3), t(x, 1.5))


class GaussianDenoiser(torch.nn.Module):
    """Exact denoiser of N(0, SD^2) data, shaped like the library's models."""

    sigma_data, sigma_min, sigma_max = SD, 0.002, 80.0

    def forward(self, x, sigma, tags=None, sigma_s=None):
        sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return SD**2 / (SD**2 + sigma**2) * x


class ExactCTM(torch.nn.Module):
    """The exact CTM of Gaussian data: the PF-ODE solution x_s = x_t sqrt(sd^2+s^2)/sqrt(sd^2+t^2)."""

    sigma_data, sigma_min, sigma_max = SD, 0.002, 80.0

    def _v(self, v, x):
        return torch.as_tensor(v, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))

    def forward(self, x, t, s, tags=None):
        t, s = self._v(t, x), self._v(s, x)
        return x * ((SD**2 + s**2) / (SD**2 + t**2)).sqrt()

    def denoise(self, x, t, s, tags=None):
        t, s = self._v(t, x), self._v(s, x)
        ratio = s / t
        return torch.where(ratio < 1, (self(x, t, s) - ratio * x) / (1 - ratio), x)


def test_ctm_jumps_compose_on_the_exact_model():
    m = ExactCTM()
    x = torch.randn(4, 8, 16)
    via = m(m(x, 10.0, 2.0), 2.0, 0.5)
    torch.testing.assert_close(via, m(x, 10.0, 0.5))


def test_ctm_loss_is_zero_for_the_exact_model():
    m, gen = ExactCTM(), torch.Generator().manual_seed(0)
    x0 = SD * torch.randn(8, 8, 16, generator=gen)
    cfg = DistillConfig(n_grid=60, w=1.0, dsm_weight=0.0, distance="l2")
    loss = ctm_loss(m, m, GaussianDenoiser(), x0, None, gen, cfg)
    assert loss.item() < 1e-4  # only the teacher's Heun discretisation error remains


def test_cd_loss_is_zero_for_the_exact_model():
    class ExactCM(ExactCTM):
        def forward(self, x, t, tags=None):  # f(x, t) = x mapped to sigma_min along the ODE
            return super().forward(x, t, self.sigma_min)

    m, gen = ExactCM(), torch.Generator().manual_seed(1)
    x0 = SD * torch.randn(8, 8, 16, generator=gen)
    cfg = DistillConfig(n_grid=60, w=1.0, distance="l2")
    assert cd_loss(m, m, GaussianDenoiser(), x0, None, gen, cfg).item() < 1e-4


@pytest.mark.parametrize("kind", ["cm", "ctm"])
def test_distillation_moves_the_one_step_jump_towards_the_teachers_ode(kind):
    import copy

    from ditto2_nb.diffusion import guided, karras_sigmas, sample_heun

    t = teacher()
    student = (ConsistencyModel if kind == "cm" else CTMModel).from_teacher(t)
    target = copy.deepcopy(student).requires_grad_(False)
    x0 = torch.tanh(torch.randn(64, 8, 16, generator=torch.Generator().manual_seed(2)))
    tags = torch.randint(1, 3, (64, 1), generator=torch.Generator().manual_seed(3))
    cfg = DistillConfig(n_grid=12, w=1.5, k_max=2, dsm_weight=0.1, distance="l2")
    fn = cd_loss if kind == "cm" else ctm_loss
    x_T = 80 * torch.randn(16, 8, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ode = sample_heun(guided(t, tags[:16], cfg.w), x_T, karras_sigmas(12))

    def one_step_error():
        with torch.no_grad():
            jump = (student(x_T, 80.0, tags[:16]) if kind == "cm"
                    else student(x_T, 80.0, student.sigma_min, tags[:16]))
            return (jump - ode).pow(2).mean().item()

    before = one_step_error()
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    for step in range(60):
        gen = torch.Generator().manual_seed(100 + step)
        idx = torch.randint(64, (16,), generator=gen)
        loss = fn(student, target, t, x0[idx], tags[idx], gen, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for pt, ps in zip(target.parameters(), student.parameters()):
                pt.lerp_(ps, 1 - cfg.target_ema)
    assert one_step_error() < 0.85 * before  # measured: cm 0.33 -> 0.26


def test_samplers_are_deterministic_with_fixed_noise_and_differentiable():
    t = teacher()
    cm, ctm = ConsistencyModel.from_teacher(t), CTMModel.from_teacher(t)
    x_T = (80 * torch.randn(2, 8, 16)).requires_grad_()

    def noise(seed):
        g = torch.Generator().manual_seed(seed)
        return lambda x: torch.randn(x.shape, generator=g)

    a = cm_multistep(cm, x_T, [1.0, 0.2], noise_fn=noise(0))
    b = cm_multistep(cm, x_T, [1.0, 0.2], noise_fn=noise(0))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = ctm_gamma_sample(ctm, x_T, [80.0, 1.0, 0.0], gamma=0.0)
    d = ctm_gamma_sample(ctm, x_T, [80.0, 1.0, 0.0], gamma=0.0)
    torch.testing.assert_close(c, d, rtol=0, atol=0)
    (a.sum() + c.sum()).backward()
    assert torch.isfinite(x_T.grad).all() and x_T.grad.abs().sum() > 0


def test_gamma_one_ctm_matches_cm_style_renoising():
    """With gamma = 1 each CTM step jumps to ~eps and re-noises to t_next, like CM multistep."""
    m = ExactCTM()
    x_T = 80 * torch.randn(2, 8, 16)
    calls = []
    out = ctm_gamma_sample(m, x_T, [80.0, 2.0, 0.0], gamma=1.0,
                           noise_fn=lambda x: calls.append(1) or torch.zeros_like(x))
    assert len(calls) == 1 and out.shape == x_T.shape


@pytest.mark.parametrize("kind", ["cm", "ctm"])
def test_unconditional_student_equals_the_null_tag_mode(kind):
    from ditto2_nb.distill import make_student, unconditional_student

    torch.manual_seed(0)
    cfg = NetConfig(n_mels=8, channels=(8, 16), blocks=1, emb_dim=16, attn_heads=2, tag_vocab=(3, 4))
    cond = make_student(kind, Denoiser(cfg))
    with torch.no_grad():  # random everywhere: zero-initialised layers would hide the tags
        for p in cond.parameters():
            p.normal_(0.0, 0.1)
    uncond = unconditional_student(cond)
    assert not uncond.cfg.conditional
    x, args = torch.randn(2, 8, 16), ((3.0,) if kind == "cm" else (3.0, 0.5))
    with torch.no_grad():
        torch.testing.assert_close(uncond(x, *args), cond(x, *args, None), atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- the CTM recipe (issue 12)


class _Times:
    """Records every (sigma, sigma_s) a CTM student's network is fed."""

    def __init__(self, model):
        self.t, self.s = [], []
        self._h = model.g.register_forward_pre_hook(self._hit, with_kwargs=True)

    def _hit(self, module, args, kwargs):
        x, sigma = args[0], args[1]
        self.t.append(torch.as_tensor(sigma).expand(x.shape[0]).flatten())
        self.s.append(torch.as_tensor(kwargs["sigma_s"]).expand(x.shape[0]).flatten())

    def check(self, model):
        self._h.remove()
        t, s = torch.cat(self.t), torch.cat(self.s)
        lo, hi = model.sigma_min * (1 - 1e-6), model.sigma_max * (1 + 1e-6)
        assert ((t >= lo) & (t <= hi)).all(), (t.min(), t.max())
        assert ((s >= lo) & (s <= t * (1 + 1e-6))).all(), (s.min(), s.max())


@pytest.mark.parametrize("steps", [1, 2, 4])
@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_ctm_sampler_and_surrogate_feed_only_trained_times(steps, gamma):
    from ditto2_nb.distill import student_decode

    ctm = CTMModel.from_teacher(teacher())
    rec = _Times(ctm)
    with torch.no_grad():
        student_decode(ctm, 80 * torch.randn(2, 8, 16), steps, torch.ones(2, 1).long(), gamma=gamma)
    rec.check(ctm)


def test_ctm_loss_feeds_only_trained_times():
    import copy

    t = teacher()
    ctm = CTMModel.from_teacher(t)
    target = copy.deepcopy(ctm)
    rec = _Times(ctm)
    rec_target = _Times(target)
    gen = torch.Generator().manual_seed(0)
    cfg = DistillConfig(n_grid=12, w=1.5, k_max=2, dsm_weight=0.0)
    ctm_loss(ctm, target, t, torch.randn(8, 8, 16), torch.ones(8, 1).long(), gen, cfg)
    rec.check(ctm)
    rec_target.check(target)


def test_ctm_inner_target_is_the_students_jump_and_the_outer_the_ema_net():
    import copy

    from ditto2_nb.distill import ctm_target

    student = CTMModel.from_teacher(teacher())
    with torch.no_grad():  # a non-zero s-branch, so the jump really depends on the weights
        for p in student.parameters():
            p.add_(0.02 * torch.randn_like(p))
    target = copy.deepcopy(student)
    x_u, u, s = torch.randn(3, 8, 16), torch.full((3,), 5.0), torch.full((3,), 0.5)
    tags = torch.ones(3, 1).long()
    inner, outer = ctm_target(student, target, x_u, u, s, tags)
    with torch.no_grad():
        for p in target.parameters():  # perturb the EMA net: the inner jump must not move
            p.add_(0.05 * torch.randn_like(p))
    inner2, outer2 = ctm_target(student, target, x_u, u, s, tags)
    torch.testing.assert_close(inner2, inner, rtol=0, atol=0)
    assert (outer2 - outer).abs().max() > 1e-4
    with torch.no_grad():
        for p in student.parameters():  # ...and perturbing the student must
            p.add_(0.05 * torch.randn_like(p))
    assert (ctm_target(student, target, x_u, u, s, tags)[0] - inner).abs().max() > 1e-4
    assert not inner.requires_grad and not outer.requires_grad


def test_dsm_term_targets_the_guided_teacher_the_ctm_term_distils():
    from ditto2_nb.distill import dsm_loss

    t = teacher()
    ctm = CTMModel.from_teacher(t)  # g(x, sigma, sigma) = the teacher's conditional denoiser
    x0, tags = torch.randn(8, 8, 16), torch.ones(8, 1).long()

    def loss(**kw):
        return dsm_loss(ctm, x0, tags, torch.Generator().manual_seed(0), t, DistillConfig(**kw)).item()

    assert loss(w=1.0) < 1e-10  # already the w = 1 teacher: nothing to learn
    assert loss(w=2.0) > 1e-4  # the guided (w = 2) denoiser differs: the term pulls towards it
    assert loss(w=1.0, dsm_target="data") > 1e-2  # the old target: the data, i.e. w = 1


def test_measured_decode_default_is_used_only_for_its_own_weights(tmp_path):
    import json

    from ditto2_nb.core import checkpoints as ckpt
    from ditto2_nb.core.config import to_dict
    from ditto2_nb.distill import decode_file, load_student, student_times

    ctm = CTMModel.from_teacher(teacher())
    meta = {"student": "ctm", "net": to_dict(ctm.cfg)}
    path = ckpt.save(tmp_path / "ctm_x.safetensors", ctm.state_dict(), meta)
    assert student_times(load_student(path), 2)[1] != 0.3
    measured = {"weights_sha256": ckpt.sha256(path), "decode": {"sigma_mid": 0.3}}
    decode_file(path).write_text(json.dumps(measured))
    assert student_times(load_student(path), 2) == [80.0, 0.3, 0.0]
    assert student_times(load_student(path), 2, sigma_mid=1.0)[1] == 1.0  # an explicit choice wins
    decode_file(path).write_text(json.dumps({"weights_sha256": "0" * 64, "decode": {"sigma_mid": 0.3}}))
    assert student_times(load_student(path), 2)[1] != 0.3  # measured on other weights: ignored


def test_compression_trains_on_exactly_the_jumps_ditto2_evaluates():
    """The narrow student's targets are the source's surrogate and its 2-step decode, at the
    source's sigma_mid; every (t, s) fed is one DITTO-2 feeds."""
    from ditto2_nb.distill.compress import ditto2_jumps
    from ditto2_nb.optimize import StudentDecoder

    source = CTMModel.from_teacher(teacher()).eval()
    z = torch.randn(3, 8, 16, generator=torch.Generator().manual_seed(5))
    tags = torch.tensor([[0], [1], [2]])
    x, t, s, tags3, target = ditto2_jumps(source, z, tags, 0.3)
    decode = StudentDecoder(source, tags, sigma_mid=0.3)
    with torch.no_grad():
        torch.testing.assert_close(target[:3], decode(z, 1))
        torch.testing.assert_close(target[6:], decode(z, 2))
        torch.testing.assert_close(target[3:6], source(80.0 * z, 80.0, 0.3, tags))
        torch.testing.assert_close(source(x, t, s, tags3), target)  # the source reproduces its targets
    pairs = {(round(a, 4), round(b, 4)) for a, b in zip(t.tolist(), s.tolist())}
    assert pairs == {(80.0, source.sigma_min), (80.0, 0.3), (0.3, source.sigma_min)}


def test_compression_learns_the_sources_jumps(tmp_path):
    """A narrower student trained for a few steps reproduces the source's jumps better than at
    the start (the ci preset's CTM, compressed to half its widths); it carries the source's decode."""
    import dataclasses
    import json

    from ditto2_nb.core import checkpoints as ckpt
    from ditto2_nb.core.config import get_preset, to_dict
    from ditto2_nb.distill import decode_defaults, decode_file, load_distilled, load_student
    from ditto2_nb.distill.compress import compress_student, jump_loss

    source = load_distilled("ctm", "ci")
    path = ckpt.save(tmp_path / "ctm_ci.safetensors", source.state_dict(),
                     {"student": "ctm", "net": to_dict(source.cfg)})
    decode_file(path).write_text(json.dumps({"weights_sha256": ckpt.sha256(path),
                                             "decode": {"sigma_mid": 0.5}}))
    mel = get_preset("ci").mel
    z = torch.randn(8, mel.n_mels, mel.frames, generator=torch.Generator().manual_seed(9))
    tags = torch.zeros(8, len(source.cfg.tag_vocab), dtype=torch.long)

    def error(model):
        with torch.no_grad():
            return jump_loss(model, source, z, tags, 0.5).item()

    torch.manual_seed(0)
    before = error(CTMModel(dataclasses.replace(source.cfg, channels=(16, 24, 32), blocks=1)).eval())
    out = compress_student(path, (16, 24, 32), 1, tmp_path / "small.safetensors", preset="ci", steps=60,
                           batch_size=8, work_dir=tmp_path, progress=False)
    small = load_student(out)
    assert small.cfg.channels == (16, 24, 32) and small.cfg.blocks == 1
    assert decode_defaults(small) == {"sigma_mid": 0.5}
    assert error(small) < 0.5 * before


def test_compression_slope_term_is_the_directional_derivative_gap():
    """With a step dz the loss adds weight * |(dG_student - dG_source) / h|^2: zero for the source
    itself; for another network it equals the output error on both noises plus the weighted slope
    gap computed by hand, and it shrinks as h grows for a fixed output gap (a finite difference)."""
    from ditto2_nb.distill.compress import ditto2_jumps, jump_loss

    gen = torch.Generator().manual_seed(3)
    source = CTMModel.from_teacher(teacher()).eval()
    other = CTMModel.from_teacher(teacher()).eval()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    z = torch.randn(2, 8, 16, generator=gen)
    dz = 0.1 * torch.randn(z.shape, generator=gen)
    tags = torch.tensor([[0], [2]])
    with torch.no_grad():
        assert jump_loss(source, source, z, tags, 0.3, dz, 1.0).item() < 1e-10
        x, t, s, tags3, target = ditto2_jumps(source, z, tags, 0.3)
        xp, _, _, _, target_p = ditto2_jumps(source, z + dz, tags, 0.3)
        out, out_p = other(x, t, s, tags3), other(xp, t, s, tags3)
        slope = ((out_p - out) - (target_p - target)).pow(2).mean() / dz.pow(2).mean()
        by_hand = 0.5 * ((out - target).pow(2).mean() + (out_p - target_p).pow(2).mean()) + 0.7 * slope
        torch.testing.assert_close(jump_loss(other, source, z, tags, 0.3, dz, 0.7), by_hand)
        assert slope > 0


def test_compression_with_slopes_starts_from_init_and_records_its_recipe(tmp_path):
    """``init`` starts the narrow student from a given file (a mismatched one is refused, named);
    the slope-matched recipe is written into the exported file's card and reproduce line."""
    import json

    from ditto2_nb.core import checkpoints as ckpt
    from ditto2_nb.core.config import to_dict
    from ditto2_nb.distill import decode_file, load_distilled, load_student
    from ditto2_nb.distill.compress import compress_student

    source = load_distilled("ctm", "ci")
    path = ckpt.save(tmp_path / "ctm_ci.safetensors", source.state_dict(),
                     {"student": "ctm", "net": to_dict(source.cfg)})
    decode_file(path).write_text(json.dumps({"weights_sha256": ckpt.sha256(path),
                                             "decode": {"sigma_mid": 0.5}}))
    first = compress_student(path, (16, 24, 32), 1, tmp_path / "a.safetensors", preset="ci", steps=2,
                             batch_size=4, work_dir=tmp_path, progress=False)
    out = compress_student(path, (16, 24, 32), 1, tmp_path / "b.safetensors", preset="ci", steps=2,
                           batch_size=4, jacobian_weight=0.2, init=first, work_dir=tmp_path,
                           progress=False)
    meta = load_student(out).meta
    assert meta["jacobian_weight"] == 0.2 and meta["init_sha256"] == ckpt.sha256(first)
    assert "slopes" in meta["init_from"] and "a.safetensors" in meta["init_from"]
    assert "--jacobian-weight 0.2" in meta["reproduce"] and f"--init {first}" in meta["reproduce"]
    with pytest.raises(ValueError, match="init .* channels \\(16, 32, 32\\)"):
        compress_student(path, (16, 32, 32), 1, tmp_path / "c.safetensors", preset="ci", steps=1,
                         init=first, work_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="jacobian_step"):
        compress_student(path, (16, 24, 32), 1, tmp_path / "c.safetensors", preset="ci", steps=1,
                         jacobian_weight=0.1, jacobian_step=0.0, work_dir=tmp_path, progress=False)


def test_drop_blocks_keeps_the_sources_first_blocks_and_their_weights():
    """Keeping every block is the source itself (same outputs); keeping fewer copies the kept
    blocks' weights by name and shape and changes the function; out-of-range counts are named."""
    import dataclasses

    from ditto2_nb.distill.compress import drop_blocks

    source = CTMModel(dataclasses.replace(teacher().cfg, channels=(8, 12), blocks=2, two_time=True)).eval()
    with torch.no_grad():  # zero-initialised branches made non-zero, so every block contributes
        for p in source.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    x = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(1))
    same, one = drop_blocks(source, 2).eval(), drop_blocks(source, 1).eval()
    with torch.no_grad():
        torch.testing.assert_close(same(x, 10.0, 0.3), source(x, 10.0, 0.3))
        assert not torch.allclose(one(x, 10.0, 0.3), source(x, 10.0, 0.3))
    assert one.cfg.blocks == 1 and one.cfg.channels == source.cfg.channels
    kept = one.state_dict()
    assert all(k in source.state_dict() and torch.equal(v, source.state_dict()[k]) for k, v in kept.items())
    assert "g.net.up.0.1.conv1.weight" not in kept and "g.net.down.1.0.conv1.weight" in kept
    with pytest.raises(ValueError, match="blocks=3"):
        drop_blocks(source, 3)


def test_compression_from_source_starts_from_the_dropped_source(tmp_path):
    """``from_source`` starts from :func:`drop_blocks` of the source (its channels only; not with
    ``init``) and says so in the card and the reproduce line."""
    import json

    from ditto2_nb.core import checkpoints as ckpt
    from ditto2_nb.core.config import to_dict
    from ditto2_nb.distill import decode_file, load_distilled, load_student
    from ditto2_nb.distill.compress import compress_student

    source = load_distilled("ctm", "ci")
    path = ckpt.save(tmp_path / "ctm_ci.safetensors", source.state_dict(),
                     {"student": "ctm", "net": to_dict(source.cfg)})
    decode_file(path).write_text(json.dumps({"weights_sha256": ckpt.sha256(path),
                                             "decode": {"sigma_mid": 0.5}}))
    ch = source.cfg.channels
    out = compress_student(path, ch, 1, tmp_path / "d.safetensors", preset="ci", steps=1, batch_size=2,
                           from_source=True, lr=1e-9, work_dir=tmp_path, progress=False)
    student = load_student(out)
    meta = student.meta
    assert f"with 1 of its {source.cfg.blocks} blocks per level" in meta["init_from"]
    torch.testing.assert_close(student.state_dict()["g.net.inp.weight"].float(),
                               source.state_dict()["g.net.inp.weight"], atol=1e-3, rtol=1e-3)
    assert "--from-source" in meta["reproduce"] and "--lr 1e-09" in meta["reproduce"]
    with pytest.raises(ValueError, match="keeps the source's channels"):
        compress_student(path, (8, 8, 8), 1, tmp_path / "e.safetensors", preset="ci", steps=1,
                         from_source=True, work_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="init or from_source"):
        compress_student(path, ch, 1, tmp_path / "e.safetensors", preset="ci", steps=1, from_source=True,
                         init=out, work_dir=tmp_path, progress=False)


def test_compression_refuses_a_source_without_decode_settings(tmp_path):
    from ditto2_nb.core import checkpoints as ckpt
    from ditto2_nb.core.config import to_dict
    from ditto2_nb.distill.compress import compress_student

    ctm = CTMModel.from_teacher(teacher())
    path = ckpt.save(tmp_path / "ctm_x.safetensors", ctm.state_dict(),
                     {"student": "ctm", "net": to_dict(ctm.cfg)})
    with pytest.raises(ValueError, match="no measured decode settings"):
        compress_student(path, (8, 8), 1, tmp_path / "o.safetensors", preset="ci", steps=1)
    with pytest.raises(ValueError, match="channels=0"):
        compress_student(path, (8, 0), 1, tmp_path / "o.safetensors", preset="ci", steps=1)


def _ctm_setup(**kw):
    import copy

    t = teacher()
    student = CTMModel.from_teacher(t)
    with torch.no_grad():  # a non-zero s-branch, as after some distillation
        for p in student.parameters():
            p.add_(0.02 * torch.randn_like(p))
    target = copy.deepcopy(student).requires_grad_(False)
    x0 = torch.tanh(torch.randn(8, 8, 16, generator=torch.Generator().manual_seed(5)))
    tags = torch.randint(1, 3, (8, 1), generator=torch.Generator().manual_seed(6))
    cfg = DistillConfig(n_grid=12, w=1.5, k_max=2, **kw)
    return student, target, t, x0, tags, cfg


def _last_layer_norms(student, terms):
    layer = student.last_layer()
    g_ctm = torch.autograd.grad(terms["ctm"], layer, retain_graph=True)[0].norm()
    g_dsm = torch.autograd.grad(terms["dsm_scale"] * terms["dsm"], layer, retain_graph=True)[0].norm()
    return g_ctm.item(), g_dsm.item()


@pytest.mark.parametrize("weight", [0.25, 1.0, 3.0])
def test_adaptive_dsm_balance_gives_the_configured_gradient_share(weight):
    """Issue 25, item 3: at the student's last layer, the weighted DSM term's gradient has
    dsm_weight times the CTM term's norm, so its share is dsm_weight / (1 + dsm_weight); the total
    loss is ctm + lambda dsm, and lambda carries no gradient."""
    from ditto2_nb.distill import ctm_terms

    student, target, t, x0, tags, cfg = _ctm_setup(dsm_weight=weight)
    terms = ctm_terms(student, target, t, x0, tags, torch.Generator().manual_seed(0), cfg)
    g_ctm, g_dsm = _last_layer_norms(student, terms)
    assert g_dsm / g_ctm == pytest.approx(weight, rel=1e-4)
    assert terms["dsm_share"] == pytest.approx(weight / (1 + weight), rel=1e-4)
    assert isinstance(terms["dsm_scale"], float)  # a number, not a tensor in the graph
    torch.testing.assert_close(terms["loss"], terms["ctm"] + terms["dsm_scale"] * terms["dsm"])


def test_fixed_dsm_weight_is_kept_and_its_share_reported():
    from ditto2_nb.distill import ctm_terms

    student, target, t, x0, tags, cfg = _ctm_setup(dsm_weight=1.0, dsm_balance="fixed")
    terms = ctm_terms(student, target, t, x0, tags, torch.Generator().manual_seed(0), cfg)
    assert terms["dsm_scale"] == 1.0
    g_ctm, g_dsm = _last_layer_norms(student, terms)
    assert terms["dsm_share"] == pytest.approx(g_dsm / (g_ctm + g_dsm), rel=1e-4)


def test_distillation_history_records_the_dsm_share(tmp_path):
    """The share is written into the training history (checkpoint metadata), step by step."""
    from ditto2_nb.core import checkpoints as ckpt
    from ditto2_nb.core.config import TrainConfig
    from ditto2_nb.core.train import fit
    from ditto2_nb.distill import ctm_terms

    student, target, t, x0, tags, cfg = _ctm_setup(dsm_weight=0.5)

    def loss_fn(model, gen, step):
        terms = ctm_terms(model, target, t, x0, tags, gen, cfg)
        return terms["loss"], {"dsm_share": terms["dsm_share"]}

    path = tmp_path / "ctm.train.safetensors"
    _, hist = fit(student, loss_fn, TrainConfig(steps=3, batch_size=8, lr=1e-4, warmup=1, ckpt_every=3),
                  path, meta={}, progress=False)
    shares = ckpt.read_metadata(path)["history"]["stats"]["dsm_share"]
    assert len(shares) == 3 and shares == pytest.approx([1 / 3] * 3, rel=1e-3)
    assert hist.stats["dsm_share"] == pytest.approx(shares, rel=1e-4)


def test_adaptive_dsm_balance_without_gradients_names_the_fixed_option():
    from ditto2_nb.distill import ctm_terms

    student, target, t, x0, tags, cfg = _ctm_setup(dsm_weight=1.0)
    with torch.no_grad(), pytest.raises(ValueError, match="dsm_balance='fixed'"):
        ctm_terms(student, target, t, x0, tags, torch.Generator().manual_seed(0), cfg)
    import dataclasses

    fixed = dataclasses.replace(cfg, dsm_balance="fixed")
    with torch.no_grad():
        terms = ctm_terms(student, target, t, x0, tags, torch.Generator().manual_seed(0), fixed)
    assert terms["dsm_scale"] == 1.0 and terms["dsm_share"] is None
