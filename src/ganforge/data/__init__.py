"""Datamodules: each yields (images in [-1, 1], labels) and states its shape and class count."""

from ganforge.data.base import ImageDataModule, SampleDataModule
from ganforge.data.celeba import CelebADataModule
from ganforge.data.folder import ImageFolderDataModule
from ganforge.data.hf import HFDataModule
from ganforge.data.mnist5k import MNIST5kDataModule
from ganforge.data.stacked_mnist import StackedMNISTDataModule
from ganforge.data.streaming import StreamingDataModule
from ganforge.data.torchvision_sets import (
    CIFAR10DataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
)
from ganforge.data.toy import GaussianMixtureDataModule, GridDataModule, RingDataModule

__all__ = [
    "CIFAR10DataModule",
    "CelebADataModule",
    "FashionMNISTDataModule",
    "GaussianMixtureDataModule",
    "GridDataModule",
    "HFDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNIST5kDataModule",
    "MNISTDataModule",
    "RingDataModule",
    "SampleDataModule",
    "StackedMNISTDataModule",
    "StreamingDataModule",
]
