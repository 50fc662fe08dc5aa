"""Generator and discriminator architectures; each file holds one family."""

from ganforge.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge.nets.mlp import MLPDiscriminator, MLPGenerator
from ganforge.nets.resnet import ResNetDiscriminator, ResNetGenerator
from ganforge.nets.toy import VectorDiscriminator, VectorGenerator

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "VectorDiscriminator",
    "VectorGenerator",
]
