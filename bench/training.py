"""Miniature of MARC's training comparison: C-GRPO vs GRPO vs SFT at a one-frame budget, on CPU.

Run from the repository root, inside the venv::

    python bench/training.py               # the full design (PLAN); writes bench/training.md
    python bench/training.py --seeds 2     # only the first 2 seeds of the plan (each complete)
    python bench/training.py --quick       # tiny sizes, a smoke test (bench/_work/training-quick)
    python bench/training.py --report      # rewrite bench/training.md (and the plot) from JSON

Results are kept per seed in ``bench/_work/training/results.json`` (git-ignored); a seed already
there under the same plan is not run again, so ``--seeds 5`` after ``--seeds 2`` adds seeds 2-4.
Every number in the report and in ``bench/training-curves.png`` comes from that file.

The design, and why (issue 20 §4: the earlier version could not answer its question):

1. **C-GRPO must differ from GRPO.** With right-or-wrong rewards C-GRPO's advantages equal
   GRPO's (a two-valued group keeps its standardised values when scaled). Here the "count" kind
   is asked as a Video-R1 ``regression`` question (``make_task(graded=True)``): the student
   answers the number, the training reward is one minus the relative error (graded), a rollout
   is *correct* at a score of at least 0.5, and correct rollouts get the maintenance bonus. So
   the base reward and correctness differ and the bonus changes the advantages. Every GRPO step
   logs the share of groups whose rewards are not all equal (``mixed_groups``; only they carry
   gradient), the share whose correctness is mixed, and ``adv_diff``, the mean absolute difference
   between C-GRPO's advantages and those of the same rollouts without the maintenance term.
   Scoring is Video-R1's own (``scoring: video_r1``): exact option letters, the graded training
   reward, MRA at evaluation.
2. **Out of distribution.** The paper's claim is about benchmarks unlike the training data. The
   OOD split is the in-distribution test split's questions rendered at half speed
   (``make_task(speed=0.5)``: the same random draws, every motion half as far), never trained on.
3. **Seeds.** Each seed ``s`` trains its own teacher (SFT on the full frames, data order seeded
   by ``s``) and every student from it with seed ``s``, so the spread over seeds includes the
   teacher's. Intervals are t-based 95 % intervals over seeds; method differences are paired by
   seed (same teacher).
4. **Equal budget, curves.** Every student method gets the same prompts in the same order
   (the first ``student_samples`` training clips, ``student.epochs`` epochs, batch
   ``student.batch``): the same number of optimizer steps and prompt visits (GRPO also samples
   ``G`` rollouts per prompt, so it spends more compute per step; the wall time of each is
   reported). Validation score every ``eval_every`` steps gives the learning curves.
5. **Methods** (all from the seed's teacher, all on the compressed one-frame input):
   ``sft`` (the ground-truth answers), ``sft-teacher`` (the teacher's own greedy answers on the
   full frames as targets: the paper's SFT baseline distils a teacher's outputs; a model this
   small writes no reasoning, so the teacher's targets are its answers), ``c-grpo`` and ``grpo``
   (``compression_reward: false``).
6. **Evaluation**: greedy answers of the in-memory model (the answer path's prompt and inputs,
   :meth:`InputBuilder.prepare` with the shared frozen vision rows), scored with Video-R1's
   evaluation scorer; "score" is the mean over samples in % (multiple choice 0/100, regression
   MRA), reported with its two parts.

Hyper-parameters are fixed in :data:`PLAN` before any student runs (nothing is chosen on the
test or OOD split). The learning rates are those the previous version of this benchmark chose on
its validation slice for each method.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import common  # bench/common.py and bench/synthetic.py: bench/ is sys.path[0] as a script
from common import ROOT
from synthetic import make_task

WORK = ROOT / "bench" / "_work" / "training"
REPORT = ROOT / "bench" / "training.md"
PLOT = ROOT / "bench" / "training-curves.png"
METHODS = ("sft", "sft-teacher", "c-grpo", "grpo")
NAMES = {
    "sft": "SFT (labels)",
    "sft-teacher": "SFT (teacher targets)",
    "c-grpo": "C-GRPO",
    "grpo": "GRPO (no compression reward)",
}

#: Everything the runs use, fixed before running (see the module docstring).
PLAN = {
    "task": {
        "n_train": 736,
        "n_test": 96,
        "seed": 0,
        "frames": 8,
        "size": 56,
        "fps": 4,
        "fixed_options": True,
        "graded": True,
    },
    "ood_speed": 0.5,  # the OOD split: the test questions at half speed
    "val": 32,  # the last 32 training samples: validation only (the curves)
    # tiny_config with a 2,048-token vocabulary trained on the training prompts; one
    # initialisation for every seed (the seeds differ in the teacher's and students' training)
    "model": {"text": {"vocab_size": 2048}, "vision": {}, "seed": 0},
    "teacher": {"epochs": 5, "learning_rate": 1e-3, "batch": 8},
    "seeds": [0, 1, 2, 3, 4],
    # students: the first student_samples training prompts (same for every method and seed)
    "student_samples": 128,
    "student": {"epochs": 4, "batch": 4},
    "learning_rate": {"sft": 1e-3, "sft-teacher": 1e-3, "c-grpo": 1e-4, "grpo": 1e-4},
    "eval_every": 32,  # steps between validation points of the learning curves
    "grpo": {"num_generations": 8, "beta": 0.04, "epsilon": 0.2, "num_iterations": 1},
    "max_completion_length": 12,
    "scoring": "video_r1",
}
QUICK = {
    **PLAN,
    "task": {**PLAN["task"], "n_train": 40, "n_test": 8},
    "val": 8,
    "teacher": {**PLAN["teacher"], "epochs": 1},
    "seeds": [0, 1],
    "student_samples": 8,
    "student": {"epochs": 1, "batch": 4},
    "eval_every": 1,
}


def log(msg: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def _config(plan: dict, **kw):
    from marc.training.config import TrainConfig

    base = dict(
        teacher_frames=plan["task"]["frames"],
        # every frame of the 56-px clips, no upscaling to qwen-vl-utils' 128*28*28 floor (the
        # clips are 8 frames of 56 px; the reproduction defaults are for real benchmarks)
        answer_model={"sample_fps": 0, "min_frame_pixels": 4 * 28 * 28},
        scoring=plan["scoring"],
        prompt="marc",
        weight_decay=0.0,
        max_grad_norm=1.0,
        lr_scheduler="constant",
        budget=1,
        reasoning=False,  # a tiny model answers "<answer>X</answer>" directly
        format_weight=0.0,  # the format reward checks <think>; no signal without reasoning
        max_completion_length=plan["max_completion_length"],
        subset_size=0,
        save_steps=10_000,
        progress=False,
        **plan["grpo"],
    )
    return TrainConfig.from_dict({**base, **kw})  # flat keys: teacher_frames, budget, model


#: Every model of the run reads the same frozen vision tower (training leaves it untouched), so
#: one cache of prepared prompts serves them all.
_PROMPTS: dict = {}


def _shared(trainer):
    from marc.training.policy import PromptCache

    cache = _PROMPTS.setdefault("cache", PromptCache())
    trainer.prompts = cache
    if hasattr(trainer, "teacher_prompts"):
        trainer.teacher_prompts = cache  # keyed by sample key alone: no clash with (key, mode)
    return trainer


def _batch(prompts: list[dict]) -> dict:
    """One batch of one-row prompts of the same length (no padding, so each row is computed as
    alone): token tensors stacked, visual rows and grids concatenated in row order."""
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    out: dict = {}
    for key, value in prompts[0].items():
        if key == "mm_encoder_outputs":
            out[key] = {
                kind: BaseModelOutputWithPooling(
                    pooler_output=tuple(r for p in prompts for r in p[key][kind].pooler_output)
                )
                for kind in value
            }
        else:  # input_ids, attention_mask, mm_token_type_ids [1, L]; grids, time spacing
            out[key] = torch.cat([p[key] for p in prompts])
    return out


def _answers(trainer, samples, mode: str, max_new_tokens: int, chunk: int = 16) -> list[str]:
    """Greedy answers of ``trainer.model`` to ``samples`` on input ``mode`` ("full" or
    "compressed"), through the trainer's prompt builder (the same inputs training sees).
    Prompts of equal length and visual layout are answered together (rows never padded)."""
    import torch

    tok = trainer.tokenizer
    eos = [tok.eos_token_id, tok.convert_tokens_to_ids("<|endoftext|>")]
    eos = [i for i in eos if i is not None]
    vision = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    suppress = [i for i in tok.convert_tokens_to_ids(list(vision)) if i is not None]
    mode_before = trainer.config.student_input
    object.__setattr__(trainer.config, "student_input", mode)
    try:
        prompts = [trainer.prompt(s) for s in samples]
    finally:
        object.__setattr__(trainer.config, "student_input", mode_before)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prompts):
        layout = tuple(
            (k, tuple(v.shape)) for k, v in p.items() if isinstance(v, torch.Tensor)
        ) + tuple((k, len(e.pooler_output)) for k, e in p.get("mm_encoder_outputs", {}).items())
        groups.setdefault(layout, []).append(i)
    out: list[str] = [""] * len(samples)
    trainer.model.eval()
    with torch.no_grad():
        for rows in groups.values():
            for j in range(0, len(rows), chunk):
                part = rows[j : j + chunk]
                batch = _batch([prompts[i] for i in part])
                L = batch["input_ids"].shape[1]
                ids = trainer.model.generate(
                    **batch, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos,
                    pad_token_id=tok.pad_token_id, suppress_tokens=suppress,
                )[:, L:]  # fmt: skip
                for i, row in zip(part, ids, strict=True):
                    stop = [t for t, x in enumerate(row.tolist()) if x in eos]
                    row = row[: stop[0]] if stop else row
                    out[i] = tok.decode(row, skip_special_tokens=True)
    return out


def _score(trainer, samples, mode: str, plan: dict) -> dict[str, float]:
    """Video-R1's evaluation score of greedy answers, in %: ``score`` (all samples), ``mc``
    (multiple-choice accuracy), ``mra`` (the regression kind's MRA)."""
    from marc.training.answers import eval_score

    texts = _answers(trainer, samples, mode, plan["max_completion_length"])
    values = [
        (s.problem_type, eval_score(s.problem_type, t, s.solution, plan["scoring"]))
        for s, t in zip(samples, texts, strict=True)
    ]
    mc = [v for p, v in values if p != "regression"]
    mra = [v for p, v in values if p == "regression"]
    pct = lambda xs: 100.0 * sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {"score": pct([v for _, v in values]), "mc": pct(mc), "mra": pct(mra)}


def _corpus(samples) -> str:
    """The text the miniature's tokenizer is trained on: the training prompts and answers as the
    answer path writes them (so that a prompt takes ~145 tokens instead of ~204)."""
    from marc.compression.vlm.prompt import build_messages
    from marc.memory.core.events import EventRef
    from marc.memory.core.timeline import Span
    from marc.training.data import question_text

    lines = []
    for s in samples:
        for kinds in (["image"], ["video"]):
            event = EventRef(str(s.problem_id), str(s.path), s.path.parent.name, Span(0.0, 2.0))
            for m in build_messages(question_text(s), [event], kinds):
                lines += [p["text"] for p in m["content"] if p["type"] == "text"]
        lines.append(s.solution)
    return "\n".join(lines)


def calibrate_vision(folder: Path, samples, plan: dict) -> dict:
    """Data-dependent initialisation of the random vision tower's output layer.

    A random Qwen2.5-VL vision tower's rows differ little from clip to clip next to what they
    share (the dark background patches), so a language model trained for minutes does not find
    the evidence in them (the teacher stayed at chance; see "What was tried"). As in data-dependent
    initialisation (Krähenbühl et al. 2016, LSUV), the merger's last linear layer is rescaled so
    that each output feature has mean 0 and the standard deviation of the text embeddings (0.02)
    over ``samples`` (training clips, full frames). This is a change of the random starting
    weights, made once before the teacher trains; the tower stays frozen afterwards.
    """
    import torch

    from marc.compression.vlm.loading import load_model, load_processor
    from marc.memory.core.settings import Settings
    from marc.training.inputs import InputBuilder

    settings = Settings()
    model = load_model(folder, settings)
    builder = InputBuilder.for_model(model, load_processor(folder), settings)
    frames = plan["task"]["frames"]
    rows = torch.cat(
        [builder.prepare(s, "full", frames=frames).prompt.visuals[0].embeds for s in samples]
    )  # [n * rows, D]
    mu, sd = rows.mean(0), rows.std(0) + 1e-6  # [D] each
    target = float(model.get_input_embeddings().weight.detach().std())
    last = model.model.visual.merger.mlp[-1]  # Linear(hidden -> D)
    with torch.no_grad():
        scale = target / sd
        last.weight.mul_(scale[:, None])
        last.bias.sub_(mu).mul_(scale)
    model.save_pretrained(folder)
    return {
        "clips": len(samples),
        "before": {"mean_abs": float(mu.abs().mean()), "std": float(sd.mean())},
        "after_std": target,
    }


def _load(path: Path) -> list:
    from marc.training.data import load_dataset

    return load_dataset(path)


def _write(path: Path, samples, root: Path) -> Path:
    from marc.training.data import write_dataset

    return write_dataset(path, [s.to_record(root=root) for s in samples])


def _task(plan: dict, work: Path) -> dict:
    """The splits: train (fit), val, test, OOD test, as dataset files."""
    train_all, test = make_task(work / "task", **plan["task"])
    _, ood = make_task(work / "task-ood", **{**plan["task"], "n_train": 0}, speed=plan["ood_speed"])
    samples = _load(train_all)
    n_val, root = plan["val"], train_all.parent
    return {
        "train": _write(work / "task" / "train_fit.json", samples[:-n_val], root),
        "val": _write(work / "task" / "val.json", samples[-n_val:], root),
        "test": test,
        "ood": ood,
        "students": _write(
            work / "task" / "train_students.json",
            samples[: plan["student_samples"]],
            root,
        ),
    }


def _init(plan: dict, work: Path, train: Path) -> tuple[Path, dict]:
    from marc.compression.vlm.tiny import tiny_config, write_model

    init = work / "init"
    info = {}
    if not (init / "model.safetensors").is_file():
        fit = _load(train)
        config = tiny_config(**{k: plan["model"][k] for k in ("text", "vision")})
        write_model(init, config, seed=plan["model"]["seed"], corpus=_corpus(fit))
        info = calibrate_vision(init, fit[:256], plan)
    return init, info


def run_seed(plan: dict, work: Path, seed: int, data: dict, init: Path) -> dict:
    """One seed: its teacher, then every student method from it (see the module docstring)."""
    from marc.training.grpo import GRPOTrainer
    from marc.training.sft import SFTTrainer

    out: dict = {"timings_s": {}, "students": {}}
    splits = {k: _load(data[k]) for k in ("val", "test", "ood")}
    sd = work / f"seed{seed}"
    shutil.rmtree(sd, ignore_errors=True)

    # the teacher: SFT from the shared initialisation on the full frames, data order seeded
    t = time.perf_counter()
    tcfg = _config(plan, method="sft", model=str(init), data=str(data["train"]),
                   output_dir=str(sd / "teacher"), student_input="full", seed=seed,
                   **plan["teacher"])  # fmt: skip
    trainer = _shared(SFTTrainer(tcfg))
    teacher = trainer.train()
    out["timings_s"]["teacher_train"] = round(time.perf_counter() - t, 1)
    out["teacher_loss"] = _metrics(sd / "teacher")[-1].get("loss")
    t = time.perf_counter()
    out["teacher"] = {
        f"{split}/{mode}": _score(trainer, splits[split], mode, plan)
        for split in ("val", "test", "ood")
        for mode in ("full", "compressed")
    }
    # the teacher's greedy answers on the full frames: the targets of sft-teacher
    students = _load(data["students"])
    texts = _answers(trainer, students, "full", plan["max_completion_length"])
    from marc.training.answers import eval_score

    agree = [
        eval_score(s.problem_type, x, s.solution, plan["scoring"])
        for s, x in zip(students, texts, strict=True)
    ]
    out["teacher_targets_score"] = 100.0 * sum(agree) / len(agree)
    # the teacher's answer as Video-R1's evaluation reads it, in answer tags (a completion
    # without tags, rare once the teacher has learned the format, is taken whole)
    from marc.training.video_r1 import eval_prediction

    relabelled = [
        dataclasses.replace(s, solution=f"<answer>{eval_prediction(x).strip()}</answer>")
        for s, x in zip(students, texts, strict=True)
    ]
    out["teacher_targets_untagged"] = sum("<answer>" not in x for x in texts)
    root = Path(data["students"]).parent  # the clips' folder: records are relative to it
    data_teacher = _write(root / f"students_teacher_seed{seed}.json", relabelled, root)
    out["timings_s"]["teacher_eval"] = round(time.perf_counter() - t, 1)
    del trainer
    log(f"seed {seed} teacher: { {k: round(v['score'], 1) for k, v in out['teacher'].items()} }")

    cache = sd / "teacher_cache.sqlite"
    for name in METHODS:
        t = time.perf_counter()
        run_dir = sd / name
        cfg = _config(
            plan, method="sft" if name.startswith("sft") else "grpo", model=str(teacher),
            teacher=str(teacher), teacher_cache=str(cache),
            data=str(data_teacher if name == "sft-teacher" else data["students"]),
            output_dir=str(run_dir), seed=seed, compression_reward=name == "c-grpo",
            learning_rate=plan["learning_rate"][name], **plan["student"],
        )  # fmt: skip
        tr = _shared(SFTTrainer(cfg) if name.startswith("sft") else GRPOTrainer(cfg))
        curve = [{"step": 0, **_score(tr, splits["val"], "compressed", plan)}]
        train_s = 0.0
        while tr.step < tr.total_steps:
            t0 = time.perf_counter()
            tr.train(stop_at=min(tr.step + plan["eval_every"], tr.total_steps))
            train_s += time.perf_counter() - t0
            curve.append({"step": tr.step, **_score(tr, splits["val"], "compressed", plan)})
        final = {k: _score(tr, splits[k], "compressed", plan) for k in ("test", "ood")}
        if hasattr(tr, "close"):
            tr.close()
        out["students"][name] = {
            "curve": curve,
            "final": final,
            "train_s": round(train_s, 1),
            "steps": tr.total_steps,
            "metrics": _metrics(run_dir),
        }
        out["timings_s"][name] = round(time.perf_counter() - t, 1)
        del tr
        shutil.rmtree(run_dir, ignore_errors=True)  # keep only the numbers
        log(f"seed {seed} {name}: test {final['test']['score']:.1f}, ood "
            f"{final['ood']['score']:.1f}, val curve {[round(c['score']) for c in curve]} "
            f"({out['timings_s'][name]:.0f} s)")  # fmt: skip
    shutil.rmtree(sd, ignore_errors=True)
    return out


def _metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def run(plan: dict, work: Path, n_seeds: int | None) -> dict:
    import torch

    torch.set_num_threads(2)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "results.json"
    results: dict = {}
    if path.is_file():
        results = json.loads(path.read_text())
        if results.get("plan") != plan:
            log(f"{path}: made under another plan; starting again")
            results = {}
    results.setdefault("plan", plan)
    results.setdefault("seeds", {})
    results.setdefault("sessions", [])
    session = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "loadavg_before": common.loadavg()[0],
        "machine": {
            "cpu": _cpu(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "seeds_run": [],
    }
    t = time.perf_counter()
    data = _task(plan, work)
    init, calibration = _init(plan, work, data["train"])
    if calibration:
        results["calibration"] = calibration
    session["setup_s"] = round(time.perf_counter() - t, 1)
    wanted = plan["seeds"][:n_seeds] if n_seeds else plan["seeds"]
    for seed in wanted:
        if str(seed) in results["seeds"]:
            continue
        t = time.perf_counter()
        results["seeds"][str(seed)] = run_seed(plan, work, seed, data, init)
        results["seeds"][str(seed)]["total_s"] = round(time.perf_counter() - t, 1)
        session["seeds_run"].append(seed)
        path.write_text(json.dumps(results, indent=1) + "\n")
    session["loadavg_after"] = common.loadavg()[0]
    results["sessions"].append(session)
    path.write_text(json.dumps(results, indent=1) + "\n")
    return results


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ----------------------------------------------------------------------------------- report
def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its t-based 95 % interval (``nan`` with fewer than 2)."""
    from scipy import stats

    n = len(values)
    mean = statistics.fmean(values) if values else float("nan")
    if n < 2:
        return mean, float("nan")
    return mean, stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)


def _fmt(values: list[float]) -> str:
    mean, half = ci95(values)
    if math.isnan(mean):
        return "-"
    return f"{mean:.1f}" if math.isnan(half) else f"{mean:.1f} ± {half:.1f}"


def _seeds(results: dict) -> list[dict]:
    return [results["seeds"][k] for k in sorted(results["seeds"], key=int)]


def _step_means(seeds: list[dict], name: str, key: str) -> dict[int, float]:
    """Per logged step, the mean over seeds of a training metric of ``name``."""
    by_step: dict[int, list[float]] = {}
    for s in seeds:
        for m in s["students"][name]["metrics"]:
            if key in m:
                by_step.setdefault(m["step"], []).append(m[key])
    return {k: statistics.fmean(v) for k, v in sorted(by_step.items())}


def _phase(seeds: list[dict], name: str, key: str, part: slice) -> float:
    """Mean over seeds and over a slice of the run's steps of a training metric."""
    vals = []
    for s in seeds:
        ms = [m[key] for m in s["students"][name]["metrics"] if key in m]
        vals += ms[part]
    return statistics.fmean(vals) if vals else float("nan")


def plot(results: dict, target: Path) -> None:
    """Validation curves and the GRPO step metrics, mean over seeds (bands: min-max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = _seeds(results)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax = axes[0][0]
    for name in METHODS:
        steps = [c["step"] for c in seeds[0]["students"][name]["curve"]]
        ys = [[s["students"][name]["curve"][i]["score"] for s in seeds] for i in range(len(steps))]
        mean = [statistics.fmean(y) for y in ys]
        (line,) = ax.plot(steps, mean, marker="o", label=NAMES[name])
        ax.fill_between(steps, [min(y) for y in ys], [max(y) for y in ys], alpha=0.15,
                        color=line.get_color())  # fmt: skip
    teacher = statistics.fmean(s["teacher"]["val/full"]["score"] for s in seeds)
    ax.axhline(teacher, ls="--", c="grey", label="teacher, full frames")
    ax.set(title="validation score, compressed one-frame input", xlabel="optimizer step",
           ylabel="score %")  # fmt: skip
    ax.legend(fontsize=8)
    for ax, key, title in (
        (axes[0][1], "reward_mean", "training reward mean"),
        (axes[1][0], "mixed_groups", "share of groups with unequal rewards"),
        (axes[1][1], "adv_diff", "mean |A(C-GRPO) - A(same rewards without bonus)|"),
    ):
        for name in ("c-grpo", "grpo"):
            series = _step_means(seeds, name, key)
            ax.plot(list(series), list(series.values()), label=NAMES[name], lw=1)
        ax.set(title=title, xlabel="optimizer step")
        ax.legend(fontsize=8)
    fig.suptitle(f"bench/training.py, {len(seeds)} seed(s): mean over seeds (bands: min-max)")
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    plt.close(fig)


def report(results: dict, command: str, plot_name: str) -> str:
    p = results["plan"]
    seeds = _seeds(results)
    ran = sorted(results["seeds"], key=int)
    s0 = results["sessions"][-1]
    m = s0["machine"]
    total_min = sum(s["total_s"] for s in seeds) / 60
    lines = [
        "# Training benchmark: C-GRPO vs GRPO vs SFT at a one-frame budget (miniature)",
        "",
        "`bench/training.py` (its docstring gives the design and why). A synthetic video-QA task "
        "whose answers are in the pixels (three multiple-choice kinds and one graded "
        "`regression` kind, *count*); per seed a tiny Qwen2.5-VL-architecture teacher trained by "
        "SFT on all 8 frames, and four students started from it and trained on the compressed "
        "one-frame input with the same prompts and steps: SFT on the labels, SFT on the "
        "teacher's greedy answers, C-GRPO, and GRPO without the compression reward. Scores are "
        "Video-R1's evaluation scores of greedy answers in % (multiple choice right/wrong, "
        "regression MRA; chance is 25 % on multiple choice); ± is the half-width of the "
        "t-based 95 % interval over seeds.",
        "",
        f"- Command: `{command}`; seeds run: {', '.join(ran)} of the plan's {p['seeds']} "
        f"({total_min:.1f} min of runs)",
        f"- Dates: {', '.join(s['date'] for s in results['sessions'])}",
        f"- Machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, no GPU; "
        f"Python {m['python']}, torch {m['torch']}; 1-minute load average "
        f"{s0['loadavg_before']:.1f} before, {s0.get('loadavg_after', float('nan')):.1f} after "
        "(the machine is shared; times are wall-clock under that load)",
        f"- Task: {p['task']['n_train'] - p['val']} training clips ({p['val']} more held out for "
        f"validation), {p['task']['n_test']} test clips and the same {p['task']['n_test']} "
        f"questions at {p['ood_speed']}x speed (OOD), {p['task']['frames']} frames at "
        f"{p['task']['size']} px, {p['task']['fps']} fps",
        f"- Teacher: SFT on full frames, {p['teacher']}; students: the first "
        f"{p['student_samples']} training clips, {p['student']}, learning rates "
        f"{p['learning_rate']}; G = {p['grpo']['num_generations']}, beta = {p['grpo']['beta']}, "
        f"epsilon = {p['grpo']['epsilon']}, tau = 0.6, alpha = 1.0, temperature 1.0, top-p 0.95, "
        f"at most {p['max_completion_length']} completion tokens, scoring `{p['scoring']}`",
        "",
    ]
    if len(seeds) < 5:
        lines += [
            f"**Not the full design.** Only {len(seeds)} seed(s) ran (the plan has "
            f"{len(p['seeds'])}); the ≥ 5-seed requirement is not met, and intervals over "
            f"{len(seeds)} seed(s) are wide (or undefined for one). The full design runs with "
            "`python bench/training.py` (it keeps the seeds already in the results).",
            "",
        ]
    lines += [
        "## Scores",
        "",
        "| model | input | validation | test (in distribution) | OOD test (half speed) |",
        "|---|---|---|---|---|",
    ]
    for mode, label in (("full", "full frames (8 frames, 4 groups)"),
                        ("compressed", "compressed, 1 group")):  # fmt: skip
        who = "teacher" if mode == "full" else "student before training (= teacher)"
        cells = [_fmt([s["teacher"][f"{sp}/{mode}"]["score"] for s in seeds])
                 for sp in ("val", "test", "ood")]  # fmt: skip
        lines.append(f"| {who} | {label} | {' | '.join(cells)} |")
    for name in METHODS:
        val = _fmt([s["students"][name]["curve"][-1]["score"] for s in seeds])
        test = _fmt([s["students"][name]["final"]["test"]["score"] for s in seeds])
        ood = _fmt([s["students"][name]["final"]["ood"]["score"] for s in seeds])
        lines.append(f"| {NAMES[name]} | compressed, 1 group | {val} | {test} | {ood} |")
    lines += [
        "",
        "Parts of the score (test / OOD): multiple-choice accuracy and the count kind's MRA.",
        "",
        "| model | MC test | MRA test | MC OOD | MRA OOD |",
        "|---|---|---|---|---|",
    ]
    for mode in ("full", "compressed"):
        row = [_fmt([s["teacher"][f"{sp}/{mode}"][k] for s in seeds])
               for sp in ("test", "ood") for k in ("mc", "mra")]  # fmt: skip
        lines.append(f"| teacher, {mode} | {' | '.join(row)} |")
    for name in METHODS:
        row = [_fmt([s["students"][name]["final"][sp][k] for s in seeds])
               for sp in ("test", "ood") for k in ("mc", "mra")]  # fmt: skip
        lines.append(f"| {NAMES[name]} | {' | '.join(row)} |")
    lines += [
        "",
        "## Differences, paired by seed (same teacher)",
        "",
        "| difference (score points) | test | OOD test |",
        "|---|---|---|",
    ]
    for a, b in (("c-grpo", "sft"), ("c-grpo", "sft-teacher"), ("c-grpo", "grpo"),
                 ("grpo", "sft")):  # fmt: skip
        cells = []
        for sp in ("test", "ood"):
            d = [s["students"][a]["final"][sp]["score"] - s["students"][b]["final"][sp]["score"]
                 for s in seeds]  # fmt: skip
            cells.append(_fmt(d))
        lines.append(f"| {NAMES[a]} − {NAMES[b]} | {' | '.join(cells)} |")
    lines += [
        "",
        "## Learning curves",
        "",
        f"![curves]({plot_name})",
        "",
        "Validation score (compressed input) at each evaluation step, mean over seeds:",
        "",
    ]
    steps = [c["step"] for c in seeds[0]["students"][METHODS[0]]["curve"]]
    lines += ["| method | " + " | ".join(f"step {x}" for x in steps) + " |"]
    lines += ["|---|" + "---|" * len(steps)]
    for name in METHODS:
        cells = [
            f"{statistics.fmean(s['students'][name]['curve'][i]['score'] for s in seeds):.1f}"
            for i in range(len(steps))
        ]
        lines.append(f"| {NAMES[name]} | {' | '.join(cells)} |")
    lines += [
        "",
        "## What the GRPO updates saw",
        "",
        "Means over seeds and over the steps of each quarter of the run. `mixed groups`: share of "
        "groups whose rewards are not all equal (only these carry a policy gradient); `mixed "
        "correctness`: share whose rollouts are not all right or all wrong; `adv diff`: mean "
        "absolute difference between the advantages used and those of the same rewards "
        "without the maintenance term (0 for GRPO by construction); `maintenance`: mean "
        "maintenance term; `a_comp` and `a_full`: the student's and the teacher's training "
        "accuracy on the step's prompts.",
        "",
        "| method | quarter | reward mean | mixed groups | mixed correctness | adv diff | "
        "maintenance | a_comp | a_full |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    n_steps = seeds[0]["students"]["c-grpo"]["steps"]
    q = max(1, n_steps // 4)
    for name in ("c-grpo", "grpo"):
        for i in range(4):
            part = slice(i * q, (i + 1) * q if i < 3 else None)
            cells = [
                f"{_phase(seeds, name, k, part):.2f}"
                for k in ("reward_mean", "mixed_groups", "mixed_correct", "adv_diff",
                          "maintenance", "a_comp", "a_full")
            ]  # fmt: skip
            lines.append(f"| {NAMES[name]} | {i + 1} | {' | '.join(cells)} |")
    lines += [
        "",
        "## Per seed",
        "",
        "| seed | teacher full test | teacher targets' score | "
        + " | ".join(f"{NAMES[n]} test / OOD" for n in METHODS)
        + " | run min |",
        "|---|---|---|" + "---|" * len(METHODS) + "---|",
    ]
    for k, s in zip(ran, seeds, strict=True):
        cells = [
            f"{s['students'][n]['final']['test']['score']:.1f} / "
            f"{s['students'][n]['final']['ood']['score']:.1f}"
            for n in METHODS
        ]
        lines.append(
            f"| {k} | {s['teacher']['test/full']['score']:.1f} | "
            f"{s['teacher_targets_score']:.1f} | {' | '.join(cells)} | {s['total_s'] / 60:.1f} |"
        )
    lines += [
        "",
        "Training wall time per run (s, mean over seeds; evaluation excluded): "
        + ", ".join(
            f"{NAMES[n]} {statistics.fmean(s['students'][n]['train_s'] for s in seeds):.0f}"
            for n in METHODS
        )
        + f"; teacher {statistics.fmean(s['timings_s']['teacher_train'] for s in seeds):.0f}.",
        "",
        "## Result",
        "",
        _verdict(results),
        "",
        "## Limits of this run",
        "",
        _limits(results),
    ]
    return "\n".join(lines) + "\n\n" + EXPLORATION


def _verdict(results: dict) -> str:
    """What the numbers say, computed from them (no hand-written figures)."""
    seeds = _seeds(results)

    def diff(a: str, b: str, sp: str) -> tuple[float, float]:
        return ci95([s["students"][a]["final"][sp]["score"] - s["students"][b]["final"][sp]["score"]
                     for s in seeds])  # fmt: skip

    def says(a: str, b: str, sp: str) -> str:
        mean, half = diff(a, b, sp)
        if math.isnan(half):
            return f"{mean:+.1f} points (one seed: no interval)"
        if mean - half > 0:
            verdict = f"{NAMES[a]} ahead"
        elif mean + half < 0:
            verdict = f"{NAMES[b]} ahead"
        else:
            verdict = "no difference resolved"
        return f"{mean:+.1f} ± {half:.1f} points ({verdict})"

    adv = _phase(seeds, "c-grpo", "adv_diff", slice(None))
    mixed = _phase(seeds, "c-grpo", "mixed_groups", slice(None))
    maint = _phase(seeds, "c-grpo", "maintenance", slice(None))
    return (
        f"Over {len(seeds)} seed(s), C-GRPO minus SFT (labels): test "
        f"{says('c-grpo', 'sft', 'test')}, OOD {says('c-grpo', 'sft', 'ood')}. "
        "C-GRPO minus SFT (teacher targets): test "
        f"{says('c-grpo', 'sft-teacher', 'test')}, OOD {says('c-grpo', 'sft-teacher', 'ood')}. "
        f"C-GRPO minus GRPO: test {says('c-grpo', 'grpo', 'test')}, OOD "
        f"{says('c-grpo', 'grpo', 'ood')}. In C-GRPO's steps {100 * mixed:.0f} % of groups had "
        f"unequal rewards, the mean maintenance term was {maint:.3f} and the advantages differed "
        f"from GRPO's by {adv:.3f} on average per rollout: this is the size of the lever the "
        "compression reward had here. A difference is called resolved only when its 95 % "
        "interval excludes 0."
    )


def _limits(results: dict) -> str:
    """What the run does not establish, from its own numbers."""
    seeds = _seeds(results)
    p = results["plan"]
    teacher = _fmt([s["teacher"]["test/full"]["score"] for s in seeds])
    tail = []
    for name in METHODS:
        d = [s["students"][name]["curve"][-1]["score"] - s["students"][name]["curve"][-2]["score"]
             for s in seeds]  # fmt: skip
        tail.append(f"{NAMES[name]} {_fmt(d)}")
    mc = _fmt([s["teacher"]["test/full"]["mc"] for s in seeds])
    mra = _fmt([s["teacher"]["test/full"]["mra"] for s in seeds])
    return (
        f"The teachers are weak: {teacher} % on the full-frame test split after "
        f"{p['teacher']['epochs']} epochs, and that is the count kind (MRA {mra} %) with the "
        f"multiple-choice kinds near chance ({mc} % against 25 %). So the comparison is in effect "
        "about the graded count kind; the distance the students can recover (and `a_full`, the "
        "maintenance term's denominator) is small and noisy. The students ran a "
        f"fixed {seeds[0]['students']['c-grpo']['steps']} steps each; whether that is a plateau "
        "is for the curves to say, and the change of the validation score over the last "
        f"evaluation interval (points, mean ± 95 % interval over seeds) is: {'; '.join(tail)}. "
        f"Validation has {p['val']} clips, so one clip moves a score by "
        f"{100 / p['val']:.1f} points; test and OOD have {p['task']['n_test']} each. Larger "
        "teachers and longer student runs are a change of PLAN in `bench/training.py`."
    )


EXPLORATION = """\
## How the miniature was made to learn (from the earlier version; teacher only)

The earlier version of this benchmark (binary multiple-choice rewards, one teacher; its report is
in the git history of this file) found that a random-weight tiny model learns this task only
with: a data-dependent initialisation of the frozen vision tower's output layer
(:func:`calibrate_vision`: standardised rows, because the raw random rows differ little from clip
to clip next to the shared dark background), a tokenizer trained on the task's prompts (shorter
prompts), and options in a fixed order per question kind. The redesign keeps all three.

It also showed why that comparison could not answer its question: with right-or-wrong rewards
(`format_weight: 0`, no reasoning) C-GRPO's rewards in a group take two values, and
standardising a two-valued group removes the bonus, so C-GRPO's advantages equalled GRPO's.
The graded count kind here and the `adv diff` column above test that the maintenance term now
changes the update.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    ap.add_argument("--report", action="store_true", help="rewrite the report from saved JSON")
    ap.add_argument("--seeds", type=int, default=None, help="run only the first N plan seeds")
    a = ap.parse_args(argv)
    if a.seeds is not None and a.seeds < 1:
        ap.error(f"--seeds must be >= 1, got {a.seeds}")
    work = WORK.with_name("training-quick") if a.quick else WORK
    command = "python bench/training.py" + (" --quick" if a.quick else "") + (
        f" --seeds {a.seeds}" if a.seeds else ""
    )  # fmt: skip
    if a.report:
        results = json.loads((work / "results.json").read_text())
        command = results.get("command", command)
    else:
        results = run(QUICK if a.quick else PLAN, work, a.seeds)
        results["command"] = command
        (work / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    if not results.get("seeds"):
        print("no seed has run yet", file=sys.stderr)
        return 1
    target = work / "training-quick.md" if a.quick else REPORT
    image = work / "training-curves-quick.png" if a.quick else PLOT
    plot(results, image)
    text = report(results, command, image.name)
    target.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
