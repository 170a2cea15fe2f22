"""A transformer cross-encoder that reads a context (category path or query) and a product title
jointly: MiniLM (initialised from the all-MiniLM-L6-v2 weights), mean pooling, a linear head.

Trained on graded judgments with binary cross-entropy on soft labels (the grade rescaled to 0-1),
under a wall-clock budget, with length-grouped batches and dynamic padding so CPU time goes into
real tokens. Training runs in bfloat16 autocast where the processor computes it natively (AMX or
AVX512-BF16 CPUs, bf16-capable GPUs; fp32 master weights), keeps the word-embedding matrix frozen (its
dense gradient and optimizer update cost ~30% of a CPU step for a table mostly untouched per batch),
and anneals the learning rate to the end of whichever runs out first, the epochs or the time budget.
Saved as a versioned folder (weights + tokenizer + manifest) that the pipeline loads.

Inference on CPU can run with int8 dynamic quantization of the encoder's Linear layers
(``CrossEncoder.load(folder, device="cpu", quantize=True)`` or ``model.quantized()``); on CUDA the
model runs fp16 autocast as before. bench/cross_encoder_cost.py measures the speed and NDCG of both.

``CrossEncoderEnsemble`` scores with the mean of several models (the out-of-fold cross-encoders of
``seestocks-rank train --cross-encoder-folds k``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seestocks_rank.models.device import cpu_has_native_bf16, resolve_device
from seestocks_rank.models.encoders import default_text_model_path
from seestocks_rank.progress import Progress

META_FILE = "cross_encoder.json"


WEIGHTS = "model.pt"


TOKENIZER_DIR = "tokenizer"


ENCODER_DIR = "encoder"


@dataclass
class TrainReport:
    steps: int
    pairs_seen: int
    epochs: float
    seconds: float
    pairs_per_second: float
    loss_curve: list[float] = field(default_factory=list)
    precision: str = "float32"


def _torch():
    import torch

    return torch


TRAIN_PRECISIONS = ("auto", "bfloat16", "float32")


def training_precision(device: str, precision: str = "auto") -> str:
    """The autocast dtype ``CrossEncoder.train`` uses: ``auto`` is bfloat16 on a bf16-capable GPU or
    a CPU with native bf16 (``_cpu_has_native_bf16``), else float32. Weights stay float32 either way."""
    if precision not in TRAIN_PRECISIONS:
        raise ValueError(f"unknown training precision {precision!r}; expected one of {TRAIN_PRECISIONS}")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bfloat16" if _torch().cuda.is_bf16_supported() else "float32"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def annealed_lr_factor(step: int, elapsed_s: float, *, planned_steps: int, budget_s: float, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup`` steps, then linear decay to 0 at the
    end of whichever comes first, ``planned_steps`` or ``budget_s`` (progress is the larger of the two
    fractions), so a run cut by its time budget still ends annealed rather than at a high rate."""
    progress = max(step / max(planned_steps, 1), elapsed_s / max(budget_s, 1e-9))
    return max(0.0, min((step + 1) / max(warmup, 1), 1.0 - progress))


class CrossEncoder:
    """Scores (context, title) pairs; higher means more relevant. Load with :meth:`load` or build
    fresh from a sentence-transformers / Hugging Face folder with :meth:`from_pretrained`."""

    def __init__(self, encoder, tokenizer, head, *, max_length: int, device: str, version: str, base: str):  # noqa: ANN001
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.head = head
        self.max_length = max_length
        self.device = device
        self.version = version
        self.base = base
        self.int8 = False  # encoder Linear layers dynamically quantized (CPU inference only)

    @property
    def precision(self) -> str:
        """What ``score`` computes in: ``"int8"`` (quantized, CPU), ``"float16"`` (CUDA autocast) or ``"float32"``."""
        if self.int8:
            return "int8"
        return "float16" if self.device.startswith("cuda") else "float32"

    def quantized(self, *, per_channel: bool = True) -> CrossEncoder:
        """A copy for CPU inference whose encoder Linear layers use int8 dynamic quantization
        (``torch.ao.quantization.quantize_dynamic``, qint8 weights, activations quantized per batch);
        the pooling head stays float32. ``self`` is unchanged (the copy shares only the tokenizer).

        ``per_channel`` (default) scales each output row of a weight matrix separately instead of the
        whole matrix at once: no measurable speed difference, and closer to the float scores (the FFN
        output layers are the sensitive ones; bench/results/cross_encoder_cost.md has the numbers).

        Activations are scaled by their absolute maximum over the whole batch, so an int8 score
        depends a little on the pairs batched with it (on Home Depot TEST about as much as it differs
        from the float score, ~0.15 sd on average): reproducible for the same input, not across
        different batchings; rankings lost no NDCG@10 there.

        CPU only: raises ``ValueError`` on a CUDA model (which runs fp16 autocast instead). The copy
        can score but not ``train`` or ``save``. Its ``version`` gets an ``+int8`` suffix, since its
        scores differ slightly from the float model's. (``torch.ao.quantization`` is deprecated in
        favour of torchao but works in the pinned torch; its deprecation warnings are silenced here.)
        """
        torch = _torch()
        if self.device != "cpu":
            raise ValueError(f"int8 dynamic quantization is CPU-only (model is on {self.device!r}; CUDA uses fp16)")
        if self.int8:
            return self
        encoder = copy.deepcopy(self.encoder).eval()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*(quantiz|torchao|pt2e).*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

            qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
            quantize_dynamic(encoder, {torch.nn.Linear: qconfig}, dtype=torch.qint8, inplace=True)
        model = CrossEncoder(
            encoder,
            self.tokenizer,
            copy.deepcopy(self.head),
            max_length=self.max_length,
            device=self.device,
            version=f"{self.version}+int8{'' if per_channel else '-tensor'}",
            base=self.base,
        )
        model.int8 = True
        return model

    @classmethod
    def from_pretrained(
        cls, model_path: str | Path | None = None, *, device: str = "auto", max_length: int = 64, seed: int = 0
    ) -> CrossEncoder:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        torch = _torch()
        from transformers import AutoModel, AutoTokenizer

        path = Path(model_path) if model_path else default_text_model_path()
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"no Hugging Face model in {path} (config.json missing)")
        torch.manual_seed(seed)
        device = resolve_device(device)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        encoder = AutoModel.from_pretrained(str(path), local_files_only=True)
        head = torch.nn.Linear(encoder.config.hidden_size, 1)
        torch.nn.init.normal_(head.weight, std=0.02)
        torch.nn.init.zeros_(head.bias)
        model = cls(encoder, tokenizer, head, max_length=max_length, device=device, version="untrained", base=path.name)
        model._to_device()
        return model

    def _to_device(self) -> None:
        self.encoder.to(self.device)
        self.head.to(self.device)

    def _batch(self, contexts: list[str], titles: list[str]):  # noqa: ANN202
        enc = self.tokenizer(
            contexts, titles, padding=True, truncation="longest_first", max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def _logits(self, batch) -> object:  # noqa: ANN001
        torch = _torch()
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled).squeeze(-1).to(torch.float32)

    def _length_order(self, contexts: list[str], titles: list[str]) -> np.ndarray:
        lengths = np.fromiter((len(c) + len(t) for c, t in zip(contexts, titles, strict=True)), dtype=np.int64)
        return np.argsort(lengths, kind="stable")

    def _inference_order(self, encoded, contexts: list[str], titles: list[str]) -> np.ndarray:  # noqa: ANN001
        """The order ``score`` batches pairs in: by token count (after truncation), so each batch
        pads to nearly its own length. Sorting by character count (``_length_order``) is a poor proxy
        here: titles full of sizes and model numbers ("1/2 in. x 10 ft.") cost many tokens per
        character, and one such title sets a whole batch's padded length."""
        lengths = np.fromiter(map(len, encoded["input_ids"]), dtype=np.int64, count=len(titles))
        return np.argsort(lengths, kind="stable")

    def score(self, contexts: list[str], titles: list[str], batch_size: int = 128) -> np.ndarray:
        """Relevance logits for aligned lists, in input order. All pairs are tokenized once, then
        scored in batches of similar token length (padded per batch), in inference mode; fp16
        autocast on CUDA, int8 Linear layers on CPU for a :meth:`quantized` model."""
        torch = _torch()
        if len(contexts) != len(titles):
            raise ValueError("contexts and titles must have the same length")
        out = np.empty(len(titles), dtype=np.float32)
        if not titles:
            return out
        encoded = self.tokenizer(contexts, titles, truncation="longest_first", max_length=self.max_length)
        order = self._inference_order(encoded, contexts, titles)
        self.encoder.eval()
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.device.startswith("cuda") else nullcontext()
        with torch.inference_mode(), autocast, Progress("cross-encoder scoring", len(order), "pairs") as progress:
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = self.tokenizer.pad({k: [v[i] for i in idx] for k, v in encoded.items()}, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                out[idx] = self._logits(batch).float().cpu().numpy()
                progress.update(len(idx))
        return out

    def train(
        self,
        contexts: list[str],
        titles: list[str],
        labels: np.ndarray,
        *,
        budget_seconds: float,
        max_epochs: float = 3.0,
        batch_size: int = 32,
        learning_rate: float = 4e-5,
        precision: str = "auto",
        freeze_word_embeddings: bool = True,
        seed: int = 0,
        log: Callable[[str], None] | None = None,
    ) -> TrainReport:
        """Fine-tune on soft labels in [0, 1] until the time budget or ``max_epochs`` runs out.

        Batches group pairs of similar length (shuffled in buckets) so padding stays small; the
        learning rate warms up for 5% of the planned steps (at most 200), then decays linearly to 0 at
        the end of the epochs or of the budget, whichever comes first (``annealed_lr_factor``).
        ``precision``: autocast dtype, see ``training_precision``. ``freeze_word_embeddings`` keeps
        the token-embedding table fixed (position, type embeddings and all layers still train).
        """
        torch = _torch()
        if self.int8:
            raise ValueError("an int8-quantized cross-encoder cannot be trained: train the float model")
        dtype = training_precision(self.device, precision)
        labels = np.clip(np.asarray(labels, dtype=np.float32), 0.0, 1.0)
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        word_embeddings = self.encoder.get_input_embeddings().weight
        word_embeddings.requires_grad_(not freeze_word_embeddings)
        params = [p for p in [*self.encoder.parameters(), *self.head.parameters()] if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01, fused=True)
        n = len(titles)
        steps_per_epoch = max(1, math.ceil(n / batch_size))
        planned = max(1, int(steps_per_epoch * max_epochs))
        warmup = max(1, min(planned // 20, 200))
        start, step, seen, curve, running = time.perf_counter(), 0, 0, [], []
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: annealed_lr_factor(
                s, time.perf_counter() - start, planned_steps=planned, budget_s=budget_seconds, warmup=warmup
            ),
        )
        loss_fn = torch.nn.BCEWithLogitsLoss()
        autocast = (
            torch.autocast("cuda" if self.device.startswith("cuda") else "cpu", dtype=torch.bfloat16)
            if dtype == "bfloat16"
            else nullcontext()
        )
        self.encoder.train()
        order = self._length_order(contexts, titles)
        while step < planned and time.perf_counter() - start < budget_seconds:
            # length buckets of 50 batches, shuffled inside and between buckets
            buckets = [order[i : i + 50 * batch_size] for i in range(0, n, 50 * batch_size)]
            batches = []
            for bucket in buckets:
                bucket = bucket[rng.permutation(len(bucket))]
                bucket = bucket[np.argsort([len(titles[i]) + len(contexts[i]) for i in bucket], kind="stable")]
                batches += [bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size)]
            for b in rng.permutation(len(batches)):
                idx = batches[b]
                batch = self._batch([contexts[i] for i in idx], [titles[i] for i in idx])
                target = torch.from_numpy(labels[idx]).to(self.device)
                with autocast:
                    logits = self._logits(batch)
                loss = loss_fn(logits, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                step += 1
                seen += len(idx)
                running.append(loss.item())
                if step % 25 == 0:
                    curve.append(float(np.mean(running)))
                    running = []
                    if log and step % 250 == 0:
                        log(f"cross-encoder step {step}/{planned}: loss {curve[-1]:.4f}, {seen} pairs")
                if step >= planned or time.perf_counter() - start >= budget_seconds:
                    break
        if running:
            curve.append(float(np.mean(running)))
        word_embeddings.requires_grad_(True)
        self.encoder.eval()
        seconds = time.perf_counter() - start
        self.version = self._fingerprint()
        return TrainReport(step, seen, seen / max(n, 1), seconds, seen / max(seconds, 1e-9), curve, dtype)

    def _fingerprint(self) -> str:
        h = hashlib.sha1()
        encoder = list(self.encoder.parameters())
        for tensor in [*self.head.state_dict().values(), encoder[0], encoder[-1]]:
            h.update(tensor.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()[:12]

    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        """Write weights, tokenizer and manifest into ``folder`` (replaced atomically)."""
        torch = _torch()
        if self.int8:
            raise ValueError("save the float cross-encoder; quantize after loading (load(..., quantize=True))")
        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.encoder.save_pretrained(str(tmp / ENCODER_DIR))
        self.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        torch.save(self.head.state_dict(), tmp / WEIGHTS)
        manifest = {"version": self.version, "max_length": self.max_length, "base": self.base, **(extra or {})}
        (tmp / META_FILE).write_text(json.dumps(manifest, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, device: str = "auto", quantize: bool = False) -> CrossEncoder:
        """Load a saved model. ``quantize=True`` returns the int8 copy of :meth:`quantized` when the
        model runs on CPU. Rule on GPUs: with ``device="auto"`` resolving to CUDA, ``quantize`` is
        ignored (the model runs fp16 as usual, so a CPU setting is safe on a GPU machine); asked
        explicitly for a CUDA device, ``quantize=True`` raises ``ValueError``."""
        if quantize and device not in ("auto", "cpu"):
            raise ValueError(f"quantize=True is CPU-only (device={device!r}); CUDA runs fp16 instead")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        torch = _torch()
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder)
        manifest_path = folder / META_FILE
        if not manifest_path.exists():
            raise FileNotFoundError(f"no cross-encoder in {folder} ({META_FILE} missing): train one first")
        manifest = json.loads(manifest_path.read_text())
        device = resolve_device(device)
        tokenizer = AutoTokenizer.from_pretrained(str(folder / TOKENIZER_DIR), local_files_only=True)
        encoder = AutoModel.from_pretrained(str(folder / ENCODER_DIR), local_files_only=True)
        head = torch.nn.Linear(encoder.config.hidden_size, 1)
        head.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True))
        model = cls(
            encoder,
            tokenizer,
            head,
            max_length=int(manifest["max_length"]),
            device=device,
            version=manifest["version"],
            base=manifest.get("base", ""),
        )
        model._to_device()
        model.encoder.eval()
        return model.quantized() if quantize and device == "cpu" else model


class CrossEncoderEnsemble:
    """Several cross-encoders scoring as one: the mean of their scores (the k out-of-fold models of
    ``seestocks-rank train --cross-encoder-folds k``). ``version`` hashes the members' versions in order."""

    def __init__(self, members: Sequence[CrossEncoder]) -> None:
        if not members:
            raise ValueError("a cross-encoder ensemble needs at least one member")
        self.members = list(members)
        self.version = hashlib.sha1(json.dumps([m.version for m in self.members]).encode()).hexdigest()[:12]

    @property
    def device(self) -> str:
        return self.members[0].device

    def score(self, contexts: list[str], titles: list[str], **kwargs: object) -> np.ndarray:
        """The members' mean relevance logit for aligned lists, in input order (``kwargs`` go to each member)."""
        return np.mean([m.score(contexts, titles, **kwargs) for m in self.members], axis=0).astype(np.float32)

    @classmethod
    def load(
        cls, folders: Sequence[str | Path], *, device: str = "auto", quantize: bool = False
    ) -> CrossEncoderEnsemble:
        """Load each saved member folder with :meth:`CrossEncoder.load`."""
        return cls([CrossEncoder.load(f, device=device, quantize=quantize) for f in folders])
