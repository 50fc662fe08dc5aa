"""Generator and discriminator architectures; each file holds one family."""

from ganforge.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge.nets.mlp import MLPDiscriminator, MLPGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator"]
