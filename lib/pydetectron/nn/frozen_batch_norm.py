"""FrozenBatchNorm2d: BatchNorm with fixed statistics and affine terms (torchvision's)."""

import torch
import torch.nn.functional as F
from torch import nn

from .affine_channel import check_norm_input


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d in permanent eval mode whose four tensors are buffers, not parameters.

    ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias``. The state dict
    keys match ``nn.BatchNorm2d`` (``num_batches_tracked`` is accepted and dropped) so
    torchvision checkpoints load unchanged.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_norm_input(x, self.num_features, "FrozenBatchNorm2d")
        # The eval-mode batch norm kernel: one fused pass, no full-size temporary.
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"

    @classmethod
    def convert_frozen_batchnorm(cls, module: nn.Module) -> nn.Module:
        """Return ``module`` with every ``nn.BatchNorm2d`` in it replaced by a frozen copy.

        A BatchNorm2d given directly is returned as a new FrozenBatchNorm2d; otherwise
        children are replaced in place and ``module`` itself is returned.
        """
        if isinstance(module, nn.BatchNorm2d):
            frozen = cls(module.num_features, eps=module.eps)
            reference = module.running_mean if module.track_running_stats else module.weight
            if reference is not None:
                frozen = frozen.to(device=reference.device, dtype=reference.dtype)
            with torch.no_grad():
                if module.affine:
                    frozen.weight.copy_(module.weight)
                    frozen.bias.copy_(module.bias)
                if module.track_running_stats:
                    frozen.running_mean.copy_(module.running_mean)
                    frozen.running_var.copy_(module.running_var)
            return frozen
        for name, child in module.named_children():
            new_child = cls.convert_frozen_batchnorm(child)
            if new_child is not child:
                setattr(module, name, new_child)
        return module
