"""Helpers shared by the tests of networks."""
import torch
from torch import nn


@torch.no_grad()
def randomize_batch_norm(net: nn.Module) -> nn.Module:
    """Give every batch norm of ``net`` non-trivial statistics and affine parameters, so that a test
    comparing two networks also checks that the right statistics went to the right channels."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.1)
    return net
