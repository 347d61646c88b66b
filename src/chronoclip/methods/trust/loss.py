"""TRUST's losses as pure functions (methods-multimodal §B.2 (b, d), §B.3).

- :func:`uncertainty_weights` — w_i = softmax_j(scale · cos(image_i, caption_j))|_{j=i}, the probability
  that image i picks its own caption among the batch's, from a frozen CLIP, without grad;
- :func:`weighted_cross_entropy` — (1/B) Σ w_i CE(logits_i, ŷ_i): divided by B, not Σw (B.7.8);
- :func:`self_training_loss` — (1/B) Σ (1 − w_i) CE(strong_i, argmax weak_i) (FixMatch-like, no threshold);
- :func:`caption_similarity` — S_ij = cos(u_i, u_j) of the text classifier's caption features, no grad;
- :func:`soft_contrastive_loss` — SupCon with text weights: every pair is pulled with weight S and pushed
  with weight 1 − S, with gradients through the image features (the released code has none, B.7.1) and
  an ``eps`` that keeps it finite when captions are identical (S ≡ 1, B.7.7).

References: Litrico et al., TRUST, AAAI 2026 (arXiv 2508.06452); Khosla et al., Supervised Contrastive
Learning, NeurIPS 2020 (arXiv 2004.11362).

Example:
    >>> import torch
    >>> z = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    >>> float(soft_contrastive_loss(z, torch.eye(4).repeat(2, 2))) > 0
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: CLIP's logit scale (100) over TRUST's softmax temperature 3: the scale of :func:`uncertainty_weights`.
WEIGHT_SCALE = 100.0 / 3.0
#: SupCon's temperature (also its base temperature, so the loss factor T / T_base is 1).
TEMPERATURE = 0.07


@torch.no_grad()
def uncertainty_weights(image: torch.Tensor, text: torch.Tensor, scale: float = WEIGHT_SCALE) -> torch.Tensor:
    """Per-sample caption reliability ``w [B]`` in (0, 1] from frozen CLIP embeddings (no graph).

    Args:
        image: ``[B, D]`` image embeddings of the target batch (any norm: they are L2-normalised here).
        text: ``[B, D]`` embeddings of the same samples' captions, row i belonging to image i.
        scale: multiplies the cosine similarities before the softmax over the batch's captions.

    ``w`` is batch-relative (B.7.5): with B = 1 it is 1; near-duplicate captions lower each other's w.
    Permuting the batch permutes w.
    """
    if image.shape != text.shape or image.dim() != 2:
        raise ValueError(f"image and text embeddings must both be [B, D], got {tuple(image.shape)} "
                         f"and {tuple(text.shape)}")
    logits = scale * F.normalize(image.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T
    return logits.softmax(dim=1).diagonal()


def weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(1/B) Σ_i w_i CE(logits_i, targets_i)``; with ``w ≡ 1`` the plain mean cross-entropy.

    Args:
        logits: ``[B, C]``; targets: ``[B]`` class indices; weights: ``[B]`` (treated as constants).
    """
    return (weights.detach() * F.cross_entropy(logits, targets, reduction="none")).mean()


def self_training_loss(strong_logits: torch.Tensor, weak_logits: torch.Tensor, weights: torch.Tensor
                       ) -> torch.Tensor:
    """``(1/B) Σ_i (1 − w_i) CE(strong_i, argmax weak_i)``: the model's own hard prediction on the weak
    view supervises the strong view where the caption is judged unreliable; 0 when ``w ≡ 1``.

    Args:
        strong_logits, weak_logits: ``[B, C]`` of the two views of the same images (the target is a hard
            argmax, so no gradient flows through ``weak_logits``).
        weights: ``[B]`` caption weights w.
    """
    return weighted_cross_entropy(strong_logits, weak_logits.detach().argmax(dim=-1), 1.0 - weights)


@torch.no_grad()
def caption_similarity(features: torch.Tensor) -> torch.Tensor:
    """``S [N, N]``, ``S_ij = cos(u_i, u_j)`` of caption features ``u [N, F]`` (no graph; S_ii = 1, and
    S ∈ [0, 1] for the text classifier's ReLU features, which are ≥ 0). A zero vector is similar only to
    itself."""
    unit = F.normalize(features.float(), dim=-1)
    similarity = unit @ unit.T
    return similarity.fill_diagonal_(1.0)


def soft_contrastive_loss(z: torch.Tensor, similarity: torch.Tensor, temperature: float = TEMPERATURE,
                          base_temperature: float = TEMPERATURE, eps: float = 1e-6) -> torch.Tensor:
    """TRUST's soft-contrastive loss over ``M`` embeddings (samples × views), methods-multimodal §B.3.

    With ``ℓ_ab = z_a·z_b / T``, positive weights ``P_ab = S_ab`` (b ≠ a) and negative weights
    ``N_ab = 1 − S_ab`` (so ``N_aa = 0``)::

        L_a = −Σ_{b≠a} P_ab (ℓ_ab − log(Σ_k N_ak e^{ℓ_ak} + eps)) / (Σ_{b≠a} P_ab + eps)
        L   = (T / T_base) · mean_a L_a

    The log-sum is taken relative to each row's largest logit (the released SupCon's stabilisation).

    Args:
        z: ``[M, D]`` image features; L2-normalised here, so the loss is invariant to their scale.
            Gradients flow through them.
        similarity: ``[M, M]`` pair weights S in [0, 1] (constants: no gradient flows into them), e.g.
            :func:`caption_similarity` tiled over views. ``S = I`` tiled over two views gives the decoupled
            NT-Xent (the other view is the only positive and is left out of the denominator).
        eps: keeps the loss and its gradients finite when every negative weight is 0 (identical captions).
    """
    count = z.shape[0]
    if similarity.shape != (count, count):
        raise ValueError(f"similarity must be [{count}, {count}] for {count} embeddings, got {tuple(similarity.shape)}")
    logits = F.normalize(z.float(), dim=-1) @ F.normalize(z.float(), dim=-1).T / temperature
    logits = logits - logits.detach().amax(dim=1, keepdim=True)
    similarity = similarity.detach().float()
    not_self = 1.0 - torch.eye(count, device=z.device)
    positive = similarity * not_self
    negative = (1.0 - similarity) * not_self
    log_denominator = torch.log((negative * logits.exp()).sum(dim=1, keepdim=True) + eps)
    per_anchor = -(positive * (logits - log_denominator)).sum(dim=1) / (positive.sum(dim=1) + eps)
    return (temperature / base_temperature) * per_anchor.mean()
