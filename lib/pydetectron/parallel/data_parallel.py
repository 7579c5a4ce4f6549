"""Detectron.pytorch's DataParallel for single-process multi-GPU training with variable image sizes.

Recommended instead: one process per GPU with DistributedDataParallel (`torchrun
--nproc_per_node N tools/train_net_step.py ...`), which is faster and scales to many
machines. This wrapper exists for single-process runs on several GPUs:

- each GPU gets its own list of images, padded only to the largest image of that GPU
  (not of the whole batch), which saves memory with mixed aspect ratios;
- keyword inputs named in `cpu_keywords` stay on the CPU (e.g. `im_info`);
- dict outputs are gathered: scalar losses averaged (weighted by images per GPU), other
  tensors concatenated; list outputs (detections) are concatenated.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.parallel import parallel_apply, replicate

from pydetectron.parallel.scatter_gather import gather_outputs, scatter_minibatch


class VariableSizeDataParallel(nn.Module):
    """Run `module` on several GPUs of one process, each on its own padded share of the images.

    Args:
        module: a detection model taking (images, im_info, targets=None, original_sizes=None);
            it must live on `device_ids[0]`.
        device_ids: GPUs to use (default: all visible).
        output_device: where outputs are gathered (default: `device_ids[0]`).
        cpu_keywords: keyword inputs left on the CPU.
        size_divisibility: pad each GPU's images to a multiple of this (FPN.COARSEST_STRIDE with FPN).
    """

    def __init__(
        self,
        module: nn.Module,
        device_ids: Sequence[int | torch.device] | None = None,
        output_device: int | torch.device | None = None,
        cpu_keywords: Sequence[str] = ("im_info",),
        size_divisibility: int = 0,
    ):
        super().__init__()
        if device_ids is None:
            device_ids = list(range(torch.cuda.device_count()))
        if not device_ids:
            raise RuntimeError("VariableSizeDataParallel needs at least one CUDA device")
        self.module = module
        self.device_ids = [torch.device("cuda", d) if isinstance(d, int) else torch.device(d) for d in device_ids]
        self.output_device = torch.device(
            "cuda", output_device
        ) if isinstance(output_device, int) else torch.device(output_device or self.device_ids[0])
        self.cpu_keywords = tuple(cpu_keywords)
        self.size_divisibility = size_divisibility

    def forward(self, images: torch.Tensor, im_info: torch.Tensor, targets=None, original_sizes=None):
        inputs = {"images": images, "im_info": im_info, "targets": targets, "original_sizes": original_sizes}
        scattered = scatter_minibatch(inputs, self.device_ids, self.cpu_keywords, self.size_divisibility)
        weights = [float(chunk["images"].shape[0]) for chunk in scattered]
        devices = self.device_ids[: len(scattered)]
        if len(scattered) == 1:
            return gather_outputs([self.module(**scattered[0])], self.output_device, weights)
        replicas = replicate(self.module, devices, not torch.is_grad_enabled())
        outputs = parallel_apply(replicas, [()] * len(scattered), scattered, devices)
        return gather_outputs(outputs, self.output_device, weights)
