"""The C-GRPO and SFT trainers on a tiny random-weight Qwen2.5-VL and a few synthetic clips.

Real optimisation steps through the real answer path (vision tower, compression, precomputed
visual rows): weights change where they should and only there, the loss behaves as the objective
says, the teacher cache is reused, a resumed run equals an uninterrupted one, and the config
loader and the CLI give one-line errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from marc.memory.core.config import AnswerModelConfig, CompressionConfig
from marc.training.config import TrainConfig, load_config
from marc.training.data import load_dataset
from marc.training.grpo import GRPOTrainer, grpo_loss
from marc.training.rewards import RolloutRewards
from marc.training.sft import SFTTrainer, sft_target

# -------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from marc.compression.vlm.tiny import tiny_config, write_model

    folder = tmp_path_factory.mktemp("tiny-vlm")
    write_model(folder, tiny_config(), seed=0)
    return folder


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Path:
    from synthetic import make_task

    train, _ = make_task(tmp_path_factory.mktemp("task"), n_train=4, n_test=0, seed=0)
    return train


def _config(tiny_model: Path, task: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        method="grpo",
        model=str(tiny_model),
        data=str(task),
        output_dir=str(out),
        teacher_frames=8,  # the synthetic clips have 8 frames
        # every frame of the 2 s clips, at their 56 px (not upscaled to qwen-vl-utils' floor)
        answer_model={"sample_fps": 0, "min_frame_pixels": 3136},
        prompt="marc",  # the short archive prompt (the tiny tokenizer's words)
        num_generations=4,
        max_completion_length=8,
        learning_rate=1e-3,
        reasoning=False,
        format_weight=0.0,
        batch=2,
        save_steps=100,
        progress=False,
    )
    return TrainConfig.from_dict({**base, **kw})  # the flat keys of earlier configs still work


class ShortIsBetter:
    """A test reward with signal on a random-weight model: shorter completions score higher."""

    def __call__(self, problem_type, solution, completions, a_full, *, data_type="video"):
        n = len(completions)
        rewards = [-len(c) / 10 for c in completions]
        return RolloutRewards(rewards, [0.0] * n, [False] * n, [0.0] * n, 0.0, a_full, 0.0)


def _lm_and_vision(model) -> tuple[dict, dict]:
    lm = {n: p.detach().clone() for n, p in model.named_parameters() if "visual" not in n}
    vis = {n: p.detach().clone() for n, p in model.model.visual.named_parameters()}
    return lm, vis


# -------------------------------------------------------------------------------- the objective


def test_loss_with_equal_rewards_is_only_kl():
    torch.manual_seed(0)
    logp = torch.randn(4, 5, requires_grad=True)
    ref = logp.detach() + 0.3 * torch.randn(4, 5)
    mask = torch.ones(4, 5)
    zero = torch.zeros(4)  # all-equal rewards: group advantages are 0
    loss, parts = grpo_loss(logp, logp.detach(), ref, zero, mask, beta=0.04)
    d = ref - logp.detach()
    kl = torch.exp(d) - d - 1
    assert torch.isclose(loss, 0.04 * kl.mean(), atol=1e-6)  # only the KL term acts
    assert parts["kl"] == pytest.approx(float(kl.mean()), rel=1e-5)
    loss0, _ = grpo_loss(logp, logp.detach(), None, zero, mask, beta=0.0)
    loss0.backward()
    assert loss0.item() == 0.0 and torch.all(logp.grad == 0)  # no reward signal, no KL: nothing


def test_loss_at_ratio_one_is_advantage_weighted_mean_logprob_gradient():
    torch.manual_seed(1)
    logp = torch.randn(3, 6, requires_grad=True)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] * 1 + [0] * 5], dtype=torch.float)
    adv = torch.tensor([1.0, -0.5, 2.0])
    loss, parts = grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.0)
    assert loss.item() == pytest.approx(-float(adv.mean()))  # rho = 1: -mean_i A_i
    loss.backward()
    # d loss / d logp_it = -A_i / (G |o_i|) on completion tokens, 0 on padding
    expected = -(adv.view(3, 1) / (3 * mask.sum(1, keepdim=True))) * mask
    assert torch.allclose(logp.grad, expected, atol=1e-6)
    assert parts["clip_fraction"] == 0.0


def test_clipping_stops_the_gradient_outside_the_trust_region():
    old = torch.zeros(2, 2)
    logp = torch.full((2, 2), 0.5, requires_grad=True)  # rho = e^0.5 > 1.2
    loss, parts = grpo_loss(logp, old, None, torch.tensor([1.0, 1.0]), torch.ones(2, 2), beta=0)
    loss.backward()
    assert parts["clip_fraction"] == 1.0 and torch.all(logp.grad == 0)


# -------------------------------------------------------------------------------- C-GRPO steps


@pytest.mark.slow
def test_grpo_steps_change_the_language_model_only(tiny_model, task, tmp_path):
    trainer = GRPOTrainer(_config(tiny_model, task, tmp_path, max_steps=2), reward=ShortIsBetter())
    lm0, vis0 = _lm_and_vision(trainer.model)
    final = trainer.train()
    trainer.close()
    lm1, vis1 = _lm_and_vision(trainer.model)
    assert final == tmp_path / "final" and (final / "model.safetensors").is_file()
    assert any(not torch.equal(lm0[n], lm1[n]) for n in lm0), "the language model trained"
    assert all(torch.equal(vis0[n], vis1[n]) for n in vis0), "the vision tower is frozen"
    ref = {n: p for n, p in trainer.ref.named_parameters() if "visual" not in n}
    assert all(torch.equal(ref[n], lm0[n]) for n in lm0), "the reference model is frozen"
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"clip_fraction"' in lines[0] and '"a_full"' in lines[0]
    assert list((tmp_path / "runs").iterdir()), "TensorBoard events are written"
    # the compressed one-frame input: every prompt's visual rows are one group's worth
    prompt = trainer.prompt(trainer.samples[0])
    assert prompt["image_grid_thw"].tolist() == [[1, 4, 4]]  # 56 px: 4x4 patches, 1 group


@pytest.mark.slow
def test_an_update_raises_the_logprob_of_better_completions(tiny_model, task, tmp_path):
    trainer = GRPOTrainer(
        _config(tiny_model, task, tmp_path, beta=0.0, learning_rate=3e-3), reward=ShortIsBetter()
    )
    groups = trainer.rollout(0, trainer.samples[:2])

    def objective() -> float:  # sum_i A_i * mean_t logp_it: what the update ascends
        from marc.training.policy import completion_logprobs

        total = 0.0
        with torch.no_grad():
            for g in groups:
                lp = completion_logprobs(trainer.model, g.prompt, g.roll.ids, g.roll.mask)
                total += float((g.advantages * lp.sum(1) / g.roll.mask.sum(1)).sum())
        return total

    assert any(g.advantages.abs().sum() > 0 for g in groups)
    before = objective()
    trainer.update(groups)
    trainer.update(groups)
    assert objective() > before
    trainer.close()


@pytest.mark.slow
def test_teacher_results_are_cached_across_epochs_and_runs(tiny_model, task, tmp_path):
    config = _config(tiny_model, task, tmp_path / "a", epochs=2)
    trainer = GRPOTrainer(config)
    trainer.train()
    trainer.close()
    n = len(trainer.samples)
    assert trainer.teacher_calls == n  # epoch 2 reuses epoch 1's teacher rollouts
    assert trainer.teacher_cache.hits == n
    shared = config.teacher_cache_path
    again = GRPOTrainer(config.replace(output_dir=str(tmp_path / "b"), teacher_cache=str(shared)))
    again.train()
    again.close()
    assert again.teacher_calls == 0 and again.teacher_cache.hits == 2 * n


@pytest.mark.slow
def test_resuming_gives_the_weights_of_an_uninterrupted_run(tiny_model, task, tmp_path):
    def weights(folder: Path) -> dict:
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))

    kw = dict(batch=1, max_steps=4, beta=0.04, num_iterations=2, save_steps=1)
    straight = GRPOTrainer(_config(tiny_model, task, tmp_path / "s", **kw), reward=ShortIsBetter())
    straight.train()
    straight.close()

    config = _config(tiny_model, task, tmp_path / "r", **kw)
    first = GRPOTrainer(config, reward=ShortIsBetter())
    first.train(stop_at=2)
    first.close()
    assert (tmp_path / "r" / "checkpoint-2").is_dir() and not (tmp_path / "r" / "final").exists()
    resumed = GRPOTrainer(config.replace(resume=True), reward=ShortIsBetter())
    assert resumed.step == 2 and resumed.resumed_from == tmp_path / "r" / "checkpoint-2"
    resumed.train()
    resumed.close()
    a, b = weights(tmp_path / "s" / "final"), weights(tmp_path / "r" / "final")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not all(torch.equal(a[k], w) for k, w in weights(tiny_model).items())


# -------------------------------------------------------------------------------- SFT


@pytest.mark.slow
def test_sft_steps_reduce_the_loss_on_the_batch(tiny_model, task, tmp_path):
    config = _config(tiny_model, task, tmp_path, method="sft", batch=4, epochs=4)
    trainer = SFTTrainer(config)
    samples = trainer.samples
    lm0, vis0 = _lm_and_vision(trainer.model)
    before = trainer.batch_loss(samples)
    trainer.train()
    after = trainer.batch_loss(samples)
    assert after < before - 0.5
    lm1, vis1 = _lm_and_vision(trainer.model)
    assert all(torch.equal(vis0[n], vis1[n]) for n in vis0)
    assert any(not torch.equal(lm0[n], lm1[n]) for n in lm0)


def test_sft_target_is_the_answer_or_reasoning_and_answer(task):
    sample = load_dataset(task)[0]
    assert sft_target(sample, reasoning=True) == sample.solution  # no chain of thought here


# -------------------------------------------------------------------------------- config and CLI


def test_config_defaults_are_the_papers():
    c = TrainConfig(data="d.json", output_dir="o")
    assert (c.num_generations, c.temperature, c.top_p, c.epsilon, c.beta) == (
        8,
        1.0,
        0.95,
        0.2,
        0.04,
    )
    assert (c.tau, c.alpha, c.learning_rate) == (0.6, 1.0, 1e-6)
    assert (c.answer_model.frames, c.compression.budget) == (64, 1)
    assert c.answer_model.frame_pixels == 128 * 28 * 28 and c.subset_size == 5000
    with pytest.raises(ValueError, match="set num_generations"):
        TrainConfig(data="d.json", output_dir="o", num_generations=1)
    with pytest.raises(ValueError, match="set data"):
        TrainConfig(output_dir="o")


def test_paper_configs_load():
    root = Path(__file__).parents[1] / "training" / "configs"
    grpo = load_config(root / "c_grpo.yaml")
    sft = load_config(root / "sft.yaml")
    assert grpo.method == "grpo" and sft.method == "sft"
    assert grpo.learning_rate == 1e-6 and grpo.answer_model.model == "Qwen/Qwen2.5-VL-3B-Instruct"
    for c in (grpo, sft):  # the paper's inputs, in MARC's own answer and compression configs
        assert (c.answer_model.frames, c.answer_model.frame_pixels) == (64, 128 * 28 * 28)
        assert (c.answer_model.device, c.answer_model.dtype) == ("cuda", "auto")
        assert (c.compression.budget, c.compression.window, c.compression.ratio) == (1, 4, 0.5)
    assert load_config(root / "c_grpo.yaml", output_dir="x").output_dir == "x"


def test_config_sections_and_the_flat_keys_of_earlier_configs(tmp_path):
    """answer_model:/compression: are MARC's own configs; the earlier flat keys still load."""
    nested = tmp_path / "nested.yaml"
    nested.write_text(
        "data: d.json\noutput_dir: o\n"
        "answer_model: {model: tiny, frames: 8, frame_pixels: 6272, device: cpu, dtype: float32}\n"
        "compression: {budget: 2, window: 3, ratio: 0.25}\n"
    )
    flat = tmp_path / "flat.yaml"
    flat.write_text(
        "data: d.json\noutput_dir: o\nmodel: tiny\nteacher_frames: 8\nframe_pixels: 6272\n"
        "device: cpu\ndtype: float32\nbudget: 2\ncompression_window: 3\n"
        "compression_ratio: 0.25\n"
    )
    a, b = load_config(nested), load_config(flat)
    assert a == b
    assert a.answer_model == AnswerModelConfig(
        model="tiny", frames=8, frame_pixels=6272, device="cpu", dtype="float32", sample_fps=2.0
    )  # training samples the qwen-vl-utils way (2 fps, at most `frames`) unless told otherwise
    assert a.compression == CompressionConfig(budget=2, window=3, ratio=0.25)
    assert a.teacher_model == "tiny"
    assert TrainConfig.from_dict(json.loads(json.dumps(a.to_dict()))) == a  # JSON round trip
    both = tmp_path / "both.yaml"
    both.write_text("data: d.json\noutput_dir: o\nbudget: 1\ncompression: {budget: 2}\n")
    with pytest.raises(ValueError, match=r"both\.yaml: budget and compression\.budget both"):
        load_config(both)
    typo = tmp_path / "typo.yaml"
    typo.write_text("data: d.json\noutput_dir: o\ncompression: {budgte: 2}\n")
    with pytest.raises(ValueError, match=r"unknown key compression\.budgte"):
        load_config(typo)
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: d.json\noutput_dir: o\nanswer_model: {frames: 1}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: AnswerModelConfig\.frames must be >= 2"):
        load_config(bad)
    vllm = tmp_path / "vllm.yaml"
    vllm.write_text("data: d.json\noutput_dir: o\nanswer_model: {backend: vllm}\n")
    with pytest.raises(ValueError, match="backend: transformers"):
        load_config(vllm)


def test_a_yaml_run_reads_no_environment(tiny_model, task, tmp_path, monkeypatch):
    """MARC_* variables and a .env file do not reach a YAML-configured run: the YAML's frames,
    device and dtype are used (a device 'banana' would fail to load the model)."""
    from marc.training.run import train

    for var, value in {
        "MARC_VLM_FRAMES": "4",
        "MARC_DEVICE": "banana",
        "MARC_COMPRESSION_BUDGET": "3",
        "MARC_HOME": str(tmp_path / "env-home"),
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MARC_VLM_DTYPE=float16\nMARC_VLM_FRAME_PIXELS=3136\n")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"method: sft\ndata: {task}\noutput_dir: {tmp_path / 'run'}\nstudent_input: full\n"
        f"answer_model: {{model: {tiny_model}, frames: 8, device: cpu, sample_fps: 0}}\n"
        "reasoning: false\nprogress: false\nbatch: 2\nmax_steps: 1\n"
    )
    assert train("sft", cfg) == tmp_path / "run" / "final"
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["answer_model"]["frames"] == 8 and saved["answer_model"]["device"] == "cpu"
    assert saved["answer_model"]["dtype"] == "auto" and saved["compression"]["budget"] == 1
    trainer = SFTTrainer(load_config(cfg))
    assert trainer.inputs.config == load_config(cfg).answer_model
    assert trainer.model.dtype == torch.float32 and trainer.model.device.type == "cpu"
    prompt = trainer.prompt(trainer.samples[0])  # all 8 frames uncompressed: 4 groups of 2
    assert prompt["video_grid_thw"][0, 0].item() == 4
    assert not (tmp_path / "env-home").exists()


def test_load_config_errors_are_one_line(tmp_path):
    bad_key = tmp_path / "k.yaml"
    bad_key.write_text("data: d.json\noutput_dir: o\nlearnig_rate: 1e-5\n")
    with pytest.raises(ValueError, match=r"k\.yaml: unknown key 'learnig_rate'"):
        load_config(bad_key)
    bad_yaml = tmp_path / "y.yaml"
    bad_yaml.write_text("data: [d.json\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(bad_yaml)
    with pytest.raises(ValueError, match="cannot read the config"):
        load_config(tmp_path / "missing.yaml")
    bad_value = tmp_path / "v.yaml"
    bad_value.write_text("data: d.json\noutput_dir: o\nbeta: -1\n")
    with pytest.raises(ValueError, match=r"v\.yaml: beta must be >= 0"):
        load_config(bad_value)


def test_cli_errors_and_a_short_run(tiny_model, task, tmp_path):
    from marc.agent._cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["train", "grpo", "--config", str(tmp_path / "none.yaml")])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "none.yaml" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {tiny_model}\ndata: {tmp_path / 'gone.json'}\noutput_dir: o\n")
    r = runner.invoke(app, ["train", "sft", "--config", str(cfg)])
    assert r.exit_code == 2 and "gone.json does not exist" in r.stderr
    cfg.write_text(
        f"model: {tiny_model}\ndata: {task}\noutput_dir: {tmp_path / 'run'}\nteacher_frames: 8\n"
        "reasoning: false\nprogress: false\nbatch: 2\n"
    )
    r = runner.invoke(app, ["train", "sft", "--config", str(cfg), "--max-steps", "1"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == str(tmp_path / "run" / "final")


class AllRight:
    """Every completion scores 1: Video-R1's T-GRPO then pays +0.3 to each (shuffled <= 1)."""

    def __call__(self, problem_type, solution, completions, a_full, *, data_type="video"):
        n = len(completions)
        return RolloutRewards([1.0] * n, [1.0] * n, [True] * n, [0.0] * n, 1.0, a_full, 0.0)


@pytest.mark.slow
def test_video_r1_temporal_and_length_bonuses(tiny_model, task, tmp_path):
    """temporal: G/2 rollouts on the frames in random order, +0.3 when the ordered ones do at
    least 0.8 times as well; len_control: +0.2 only for 320-512-token answers (none here)."""
    config = _config(tiny_model, task, tmp_path, temporal=True, len_control=True, beta=0.0,
                     student_input="full")  # fmt: skip
    trainer = GRPOTrainer(config, reward=AllRight())
    (group,) = trainer.rollout(0, trainer.samples[:1])
    assert group.rewards.rewards == pytest.approx([1.3] * 4)  # lengths <= 8 tokens: no +0.2
    sample = trainer.samples[0]
    ordered = trainer.inputs.prepare(sample, "full", frames=8, prompt="marc")
    shuffled = trainer.inputs.prepare(sample, "full", frames=8, prompt="marc", shuffle_seed=5)
    a, b = ordered.sampled.frames[0], shuffled.sampled.frames[0]
    assert not np.array_equal(a, b)
    assert sorted(map(bytes, a)) == sorted(map(bytes, b))  # the same frames, reordered
    trainer.close()


def test_every_training_choice_says_whose_it_is():
    """Each rollout/reward/optimisation field carries a comment: paper, Video-R1 or ours."""
    import inspect

    from marc.training import config as config_module

    source = inspect.getsource(config_module.TrainConfig).splitlines()
    start = source.index("    # rollouts and reward")
    end = source.index("    # bookkeeping")
    fields = [line for line in source[start:end] if ": " in line and " = " in line
              and not line.strip().startswith("#")]  # fmt: skip
    assert len(fields) >= 30
    for line in fields:
        comment = line.partition("  # ")[2]
        assert any(w in comment for w in ("paper", "Video-R1", "ours")), line
    c = load_config(Path(__file__).parents[1] / "training" / "configs" / "c_grpo.yaml")
    assert (c.weight_decay, c.max_grad_norm, c.lr_scheduler) == (0.01, 5.0, "cosine")
    assert (c.scoring, c.prompt, c.temporal, c.len_control) == (
        "video_r1",
        "video_r1",
        False,
        False,
    )
    assert (c.subset_stratify, c.strict, c.answer_model.sample_fps) == (False, False, 2.0)


def test_train_strict_fails_on_a_bad_record(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from marc.agent._cli import app

    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"problem_id": 1, "problem": "q"}]))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {data}\noutput_dir: {tmp_path / 'o'}\nmodel: {tiny_model}\n")
    for flag in ("--strict", "--no-strict"):  # strict: that record; else: no valid record
        result = CliRunner().invoke(app, ["train", "sft", "-c", str(cfg), flag])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert "record 0: missing 'problem_type'" in line
