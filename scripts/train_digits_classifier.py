"""Train the ``digits`` feature-space classifier and write its weights into the package.

    OMP_NUM_THREADS=1 python scripts/train_digits_classifier.py [--epochs 20] [--out PATH]

(about 4 minutes on one CPU core; the committed weights came from the defaults.)

Trains on the 4,000 training digits of :func:`ganforge.metrics.digits.holdout_split` with
random per-image affine augmentation (rotation, scale, shift, via ``affine_grid``), then
prints the accuracy on the 1,000 held-out digits: copy it into ``HELD_OUT_ACCURACY`` and the
module docstring of ``ganforge/metrics/digits.py``.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.data.mnist5k import load_mnist5k
from ganforge.metrics.digits import INPUT_SIZE, DigitClassifier, holdout_split, weights_path


def random_affine(x: Tensor, gen: torch.Generator) -> Tensor:
    """Each image rotated by up to 12 degrees, scaled by 0.9-1.1 and shifted by up to 10%."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(12)
    scale = 0.9 + 0.2 * torch.rand(n, generator=gen)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


@torch.no_grad()
def accuracy(model: DigitClassifier, x: Tensor, y: Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(weights_path()))
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x, y = load_mnist5k(INPUT_SIZE)
    train_idx, held_idx = holdout_split(len(x))
    x_train, y_train = x[train_idx], y[train_idx]
    model = DigitClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * (len(x_train) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for batch in order.split(args.batch_size)[: len(x_train) // args.batch_size]:
            loss = F.cross_entropy(
                model(random_affine(x_train[batch], gen)), y_train[batch], label_smoothing=0.05
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}")
    held = accuracy(model, x[held_idx], y[held_idx])
    print(f"held-out accuracy: {held:.4f} on {len(held_idx)} digits")
    torch.save(model.state_dict(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
