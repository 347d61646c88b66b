"""The method contract every registered method implements (DESIGN §5).

A method is an ``nn.Module`` built from its validated ``Config`` dataclass, a backbone and the data's
class names. The trainer and the evaluators only talk to this surface:

- :meth:`Method.sample_spec` — what each data sample must contain (frames, size, text, ...);
- :meth:`Method.dataset` — the samples of a manifest split (the default decodes what the spec asks);
- :meth:`Method.forward` / :meth:`Method.loss` — ``loss`` returns ``{"loss": total, **named parts}``;
- :meth:`Method.predict` — what ``chronoclip predict`` prints;
- :meth:`Method.param_groups` — optimizer groups (learning-rate scale, weight decay, fixed lr);
- :meth:`Method.frozen_features` — a frozen feature extractor whose outputs the engine may cache;
- :attr:`Method.protocols` — the evaluation protocols it supports;
- :attr:`Method.run_protocol` — the one the engine runs on the val and test splits of a training run
  (``classify``: ``forward`` returns ``logits``; ``retrieval``: ``forward`` returns normalised
  ``visual_embeddings`` and ``text_embeddings``; ``stage_time``: ``forward`` returns ``stage_logits``
  and normalised time ``tau``; ``adapt``: ``classify`` on the evaluated domain, plus the caption
  pseudo-labels and weights of :meth:`adaptation_outputs`);
- :attr:`Method.label_column` / :meth:`Method.class_names_from` — where the class names come from;
- :meth:`Method.evaluation_rows` — which rows of a val / test split the method is evaluated on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from chronoclip.data.datasets import ManifestDataset, SampleSpec
from chronoclip.data.manifest import Manifest
from chronoclip.errors import ConfigError

Batch = dict[str, Any]

#: Evaluation protocols a method may declare.
PROTOCOLS = ("classify", "regress", "zero_shot", "linear_probe", "retrieval")
#: Protocols the engine can run on a training run's val / test splits; each has its evaluator in
#: :mod:`chronoclip.eval.run_protocols` (methods may not import ``eval``).
RUN_PROTOCOLS = ("classify", "retrieval", "av_probe", "stage_time", "adapt")


@dataclass
class ParamGroup:
    """One optimizer parameter group.

    Attributes:
        name: for logs.
        params: the parameters (all must require grad).
        lr_scale: multiplies the base learning rate.
        weight_decay: ``None`` = the optimizer's default.
        fixed_lr: if true the schedule does not change this group's lr (e.g. SimSiam's predictor).
    """

    name: str
    params: list[nn.Parameter]
    lr_scale: float = 1.0
    weight_decay: float | None = None
    fixed_lr: bool = False


@dataclass(frozen=True)
class FrozenFeatures:
    """A frozen feature extractor the engine may run once and cache.

    ``extract(pixels)`` maps a batch of samples' ``pixels`` to features with no autograd graph;
    ``namespace`` names everything besides the input that determines the output.
    """

    name: str
    extract: Any
    namespace: dict[str, Any] = field(default_factory=dict)


class Method(nn.Module):
    """Base class of every method. Subclasses set ``name``, ``Config`` and ``protocols``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[Any]]
    protocols: ClassVar[tuple[str, ...]] = ()
    #: What the engine evaluates on val / test (one of :data:`RUN_PROTOCOLS`).
    run_protocol: ClassVar[str] = "classify"
    #: The validation metric that selects the best checkpoint, and whether higher is better.
    best_metric: ClassVar[tuple[str, str]] = ("top1", "max")
    #: A recipe under ``chronoclip/configs/`` (e.g. ``dist/motion.yaml``) that runs use when no ``--config``
    #: is given; empty = the dataclass defaults alone.
    default_config: ClassVar[str] = ""
    #: The manifest column whose distinct training values are ``class_names`` (e.g. ``stage``).
    label_column: ClassVar[str] = "label"

    def __init__(self, cfg: Any, backbone: Any, class_names: list[str]) -> None:
        super().__init__()
        if not isinstance(cfg, self.Config):
            raise ConfigError(f"{self.name}: config must be a {self.Config.__name__}, got {type(cfg).__name__}")
        unknown = set(self.protocols) - set(PROTOCOLS)
        if unknown:
            raise ConfigError(f"{self.name}: unknown protocols {sorted(unknown)}")
        if self.run_protocol not in RUN_PROTOCOLS:
            raise ConfigError(f"{self.name}: run_protocol must be one of {RUN_PROTOCOLS}, got {self.run_protocol}")
        self.cfg = cfg
        self.backbone = backbone
        self.class_names = list(class_names)

    @classmethod
    def class_names_from(cls, train_rows: Manifest, cfg: Any) -> list[str]:
        """The class names of a run: the sorted distinct :attr:`label_column` values of its training rows.

        A method whose training rows hold labels it must not read (a domain-adaptation target) narrows them.
        """
        return train_rows.distinct(cls.label_column)

    def evaluation_rows(self, rows: Manifest, split: str) -> Manifest:
        """The rows of a ``val`` / ``test`` split the engine evaluates (the default: all of them; a
        domain-adaptation method keeps one domain)."""
        return rows

    def initialise(self, train_rows: Manifest) -> None:
        """Set starting weights from outside the run (a pretrained run, a released checkpoint) or from the
        training rows (a data-dependent init such as patch whitening).

        :func:`~chronoclip.engine.runs.train` calls it once, on a fresh run, before the first step. A
        loaded or resumed run takes its trained tensors from its own checkpoints and never reads the
        source again (it may have moved since). The default does nothing.
        """

    def sample_spec(self) -> SampleSpec:
        """What the data set must deliver for this method."""
        raise NotImplementedError

    def dataset(self, rows: Manifest, train: bool, seed: int = 0) -> Dataset[dict[str, Any]]:
        """The samples of ``rows`` this method trains (``train``) or is evaluated on.

        The default decodes what :meth:`sample_spec` asks (and lets the engine cache frozen features);
        a method with other inputs (e.g. audio beside video) returns its own data set.
        """
        return ManifestDataset(rows, self.sample_spec(), self.class_names, train=train, seed=seed)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, outputs: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        """``{"loss": scalar to minimise, **named parts for logging}``."""
        raise NotImplementedError

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        """One human-readable prediction per sample (what ``chronoclip predict`` prints)."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> Method:
        """Set training mode, keeping fully frozen submodules (e.g. a frozen tower) in eval mode."""
        super().train(mode)
        if mode:
            for module in self.modules():
                params = list(module.parameters())
                if module is not self and params and not any(p.requires_grad for p in params):
                    module.eval()
        return self

    def frozen_features(self) -> FrozenFeatures | None:
        """A cacheable frozen extractor, or ``None`` if the method has none."""
        return None

    def param_groups(self) -> list[ParamGroup]:
        """Optimizer groups; the default is one group of every trainable parameter."""
        return [ParamGroup("all", [p for p in self.parameters() if p.requires_grad])]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint stores: trainable parameters and buffers, without frozen towers.

        A direct submodule whose parameters are all frozen (e.g. a frozen CLIP) is left out whole —
        it is reloaded from the backbone spec — so checkpoints of methods on a frozen ViT stay small.
        """
        frozen = {name for name, child in self.named_children()
                  if any(True for _ in child.parameters()) and not any(p.requires_grad for p in child.parameters())}
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        parameters = {name for name, _ in self.named_parameters()}
        return {name: tensor for name, tensor in self.state_dict().items()
                if name.split(".", 1)[0] not in frozen and (name in trainable or name not in parameters)}
