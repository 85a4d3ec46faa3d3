"""Plain ``nn.Module`` architectures, one file per family; importing this registers them all."""

from zoo.models import airbench, alexnet, densenet, googlenet, knn, lenet, linear, mlp, resnet, vgg, wrn  # noqa: F401  (registration)
from zoo.models.net import ZooNet

__all__ = ["ZooNet"]
