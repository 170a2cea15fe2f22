"""The vision-language model (open_clip): product images, visual prototypes and the fine-tuning run."""

from functools import cache

import dagster as dg
import polars as pl

from seestocks_rank.models.device import resolve_device
from seestocks_rank.models.images import image_stamp
from seestocks_rank.models.vision import DEFAULT_ARCHITECTURE, LazyVisionModel, resolve_precision
from seestocks_rank.models.vlm_cadence import DEFAULT_DRIFT_THRESHOLD, check_threshold
from seestocks_rank.models.vlm_training import TrainConfig


@cache
def _load(
    architecture: str, checkpoint_path: str, device: str, precision: str, batch_size: int, seed: int, stamp: str
):  # ``stamp``: the checkpoint file's size and mtime, so a checkpoint retrained in place is loaded afresh
    return LazyVisionModel(
        architecture, checkpoint_path or None, device=device, precision=precision, batch_size=batch_size, seed=seed
    )


VISION_ENV = "SEESTOCKS_VISION"  # JSON: VisionModelResource fields for the CLI's runs, e.g. {"image_weight": 0}


class VisionModelResource(dg.ConfigurableResource):
    """open_clip model for product images. Nothing is ever downloaded.

    - ``mode``: ``auto`` (used when the catalog has image paths), ``on`` or ``off`` (text only)
    - ``architecture``: a built-in config (``rn-mini-minilm``: small ResNet + the MiniLM text tower;
      ``rn-tiny``), an open_clip name (random init) or a JSON config
    - ``checkpoint_path``: a local checkpoint to start fine-tuning from, and to use as is when
      ``fine_tune`` is off; empty: random initialisation of the image tower
    - ``device``: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda[:N]``
    - ``precision``: ``auto`` (bf16/fp16 on CUDA, fp32 on CPU), ``fp32``, ``fp16``, ``bf16``
    - ``fine_tune`` and ``train_*``: the ``vlm_checkpoint`` asset's contrastive run on (image, title);
      ``train_schedule`` ``cosine`` (default) decays the learning rate to 0 at ``train_max_epochs`` or at the
      end of ``train_minutes``, whichever comes first; ``constant`` keeps it (the recipe before 2026-11-30,
      articleType 0.09 zero-shot on the fashion photos vs 0.28 with cosine: bench/results/vision.md)
    - ``retrain``: train a new model on this run even though the served one would be kept (set it for one
      run, e.g. in the launchpad's config; left on, every run retrains)
    - ``drift_threshold``: the served model is kept while at most this share (0 to 1, default 0.25) of the
      catalog's (image, title) pairs are new to it (new products, new titles, replaced image files); above
      it, or when the architecture, start checkpoint or ``train_*`` settings change, it is retrained and
      every image re-embedded. Nights in between embed only new or changed images. 0: retrain whenever a
      pair is new; 1: only on ``retrain`` or a setup change
    - ``text_weight`` / ``image_weight``: the fused retrieval vector, ``visual_prompt_weight``: how much the
      category prompt's text embedding pulls the visual prototype
    """

    mode: str = "auto"
    architecture: str = DEFAULT_ARCHITECTURE
    checkpoint_path: str = ""
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 256
    fine_tune: bool = True
    train_minutes: float = 2.0
    train_max_epochs: float = 15.0
    train_batch_size: int = 64
    train_lr: float = 1e-3
    train_schedule: str = "cosine"
    retrain: bool = False
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD
    seed: int = 0
    text_weight: float = 0.7
    image_weight: float = 0.3
    visual_prompt_weight: float = 0.35

    def enabled_for(self, catalog: pl.DataFrame) -> bool:
        """Whether the image path runs for this catalog."""
        if self.mode not in ("auto", "on", "off"):
            raise ValueError(f"vision mode {self.mode!r}: use auto, on or off")
        if self.mode == "off":
            return False
        if self.mode == "on":
            return True
        return "image_path" in catalog.columns and catalog.get_column("image_path").drop_nulls().len() > 0

    def torch_device(self) -> str:
        return resolve_device(self.device)

    def torch_precision(self) -> str:
        return resolve_precision(self.precision, self.torch_device())

    def model(self, checkpoint_path: str | None = None, *, training: bool = False) -> LazyVisionModel:
        """The model (lazy: loads on first encode) from ``checkpoint_path`` (default: the configured one).
        ``training`` loads fp32 weights whatever the inference precision (optimisers need them)."""
        precision = "fp32" if training else self.torch_precision()
        ckpt = self.checkpoint_path if checkpoint_path is None else checkpoint_path
        if training:  # a training run mutates the weights: never share it through the cache
            return LazyVisionModel(
                self.architecture, ckpt or None, device=self.torch_device(), precision=precision,
                batch_size=self.batch_size, seed=self.seed,
            )  # fmt: skip
        return _load(
            self.architecture, ckpt or "", self.torch_device(), precision, self.batch_size, self.seed, image_stamp(ckpt)
        )

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            minutes=self.train_minutes,
            max_epochs=self.train_max_epochs,
            batch_size=self.train_batch_size,
            lr=self.train_lr,
            schedule=self.train_schedule,
            seed=self.seed,
        )

    def checked_drift_threshold(self) -> float:
        """``drift_threshold``, or a ValueError naming the setting when it is not a share in [0, 1]."""
        return check_threshold(self.drift_threshold)

    def model_for(self, vlm_checkpoint: pl.DataFrame) -> LazyVisionModel | None:
        """The image model the ``vlm_checkpoint`` registry row points at, or None (text only)."""
        row = vlm_checkpoint.row(0, named=True) if vlm_checkpoint.height else {"status": "skipped"}
        if row["status"] == "skipped":
            return None
        return self.model(row["path"] or "")
