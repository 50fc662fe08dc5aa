"""ganforge: GAN experiments on PyTorch Lightning and Hydra (docs/architecture.md maps the
package)."""
