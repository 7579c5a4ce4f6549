"""Polygon instance masks packed into flat tensors, rasterised into RoI grids on the device.

Each instance owns one or more polygons (COCO's parts); all vertices of all polygons
live in one `[V, 2]` tensor, so mask targets for every foreground RoI of a batch come
from one vectorised point-in-polygon test instead of a Python loop over instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

# Work is split so one chunk tests at most this many (point, edge) pairs.
_PAIRS_PER_CHUNK = 1 << 24


@dataclass
class PolygonMasks:
    """Polygon sets of `num_instances` instances.

    vertices [V, 2] float32 (x, y) of every polygon, one after another;
    polygon_starts [P + 1] int64: polygon p is vertices[starts[p]:starts[p + 1]];
    polygon_instance [P] int64: the instance each polygon belongs to (non-decreasing).
    Polygons with fewer than 3 vertices are dropped when packing.
    """

    vertices: torch.Tensor
    polygon_starts: torch.Tensor
    polygon_instance: torch.Tensor
    num_instances: int

    @classmethod
    def from_lists(cls, polygons: Sequence[Sequence]) -> PolygonMasks:
        """Pack per-instance lists of flat [x0, y0, x1, y1, ...] arrays (numpy or torch)."""
        parts, owners = [], []
        for instance, polys in enumerate(polygons):
            for poly in polys:
                xy = np.asarray(poly, dtype=np.float32).reshape(-1, 2)
                if len(xy) >= 3:
                    parts.append(xy)
                    owners.append(instance)
        lengths = [len(p) for p in parts]
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        vertices = np.concatenate(parts) if parts else np.zeros((0, 2), np.float32)
        return cls(
            torch.from_numpy(np.ascontiguousarray(vertices)),
            torch.from_numpy(starts),
            torch.as_tensor(owners, dtype=torch.int64),
            len(polygons),
        )

    def __len__(self) -> int:
        return self.num_instances

    def to(self, device, non_blocking: bool = False) -> PolygonMasks:
        return PolygonMasks(
            self.vertices.to(device, non_blocking=non_blocking),
            self.polygon_starts.to(device, non_blocking=non_blocking),
            self.polygon_instance.to(device, non_blocking=non_blocking),
            self.num_instances,
        )

    def polygons(self, instance: int) -> list[np.ndarray]:
        """The flat polygons of one instance (numpy, for drawing and tests)."""
        starts = self.polygon_starts.tolist()
        owners = self.polygon_instance.tolist()
        vertices = self.vertices.cpu().numpy()
        return [vertices[starts[p] : starts[p + 1]].reshape(-1) for p, owner in enumerate(owners) if owner == instance]

    def _padded_edges(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Edges grouped per instance: [N, E, 4] (x0, y0, x1, y1), zero-padded (a padded edge is
        horizontal and never crosses a ray); each edge's polygon slot [N, E]; polygon slots per instance."""
        device = self.vertices.device
        num_vertices = self.vertices.shape[0]
        lengths = self.polygon_starts[1:] - self.polygon_starts[:-1]
        edge_polygon = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
        following = torch.arange(1, num_vertices + 1, device=device)
        following[self.polygon_starts[1:] - 1] = self.polygon_starts[:-1]  # close each polygon
        edges = torch.cat((self.vertices, self.vertices[following]), dim=1)
        edge_instance = self.polygon_instance[edge_polygon]
        count = max(self.num_instances, 1)
        per_instance = torch.bincount(edge_instance, minlength=count)
        max_edges = int(per_instance.max()) if num_vertices else 1
        first_edge = torch.cumsum(per_instance, 0) - per_instance
        slot = torch.arange(num_vertices, device=device) - first_edge[edge_instance]
        padded = edges.new_zeros((count, max(max_edges, 1), 4))
        padded[edge_instance, slot] = edges
        # polygon slot within its instance: index among that instance's polygons
        polys_per_instance = torch.bincount(self.polygon_instance, minlength=count)
        first_polygon = torch.cumsum(polys_per_instance, 0) - polys_per_instance
        polygon_slot = torch.arange(len(lengths), device=device) - first_polygon[self.polygon_instance]
        edge_slot = torch.zeros((count, max(max_edges, 1)), dtype=torch.int64, device=device)
        edge_slot[edge_instance, slot] = polygon_slot[edge_polygon]
        max_polygons = int(polys_per_instance.max()) if len(lengths) else 1
        return padded, edge_slot, max(max_polygons, 1)

    def rasterize_in_boxes(self, boxes: torch.Tensor, instances: torch.Tensor, size: int) -> torch.Tensor:
        """Masks [R, size, size] (float 0/1) of instance `instances[r]` inside box `boxes[r]`.

        The box is divided into size x size cells; a cell is inside when its centre is inside
        any polygon of the instance (even-odd rule per polygon, union over polygons). Box
        widths and heights below 1 count as 1, as Detectron's polys_to_mask_wrt_box.
        """
        num_rois = boxes.shape[0]
        device = boxes.device
        out = torch.zeros((num_rois, size, size), dtype=torch.float32, device=device)
        if num_rois == 0 or self.vertices.shape[0] == 0:
            return out
        edges, edge_slot, max_polygons = self._padded_edges()
        edges = edges.to(device=device, dtype=torch.float32)
        boxes = boxes.to(torch.float32)
        widths = (boxes[:, 2] - boxes[:, 0]).clamp(min=1.0)
        heights = (boxes[:, 3] - boxes[:, 1]).clamp(min=1.0)
        centres = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
        xs = boxes[:, 0, None] + centres[None, :] * widths[:, None]  # [R, size]
        ys = boxes[:, 1, None] + centres[None, :] * heights[:, None]
        points_x = xs[:, None, :].expand(num_rois, size, size).reshape(num_rois, -1)
        points_y = ys[:, :, None].expand(num_rois, size, size).reshape(num_rois, -1)
        num_edges = edges.shape[1]
        chunk = max(1, _PAIRS_PER_CHUNK // (size * size * num_edges))
        flat = out.view(num_rois, -1)
        for lo in range(0, num_rois, chunk):
            hi = min(lo + chunk, num_rois)
            index = instances[lo:hi].to(device)
            e = edges[index]  # [r, E, 4]
            px, py = points_x[lo:hi, :, None], points_y[lo:hi, :, None]  # [r, S, 1]
            x0, y0, x1, y1 = (e[:, None, :, k] for k in range(4))  # [r, 1, E]
            straddles = (y0 > py) != (y1 > py)
            dy = torch.where(straddles, y1 - y0, torch.ones_like(y1))
            crossing_x = x0 + (py - y0) * (x1 - x0) / dy
            crosses = straddles & (px < crossing_x)  # [r, S, E]
            slots = torch.nn.functional.one_hot(edge_slot[index], max_polygons).to(torch.float32)  # [r, E, P]
            counts = torch.bmm(crosses.to(torch.float32), slots)  # [r, S, P]
            flat[lo:hi] = (counts.remainder(2) == 1).any(dim=2).to(torch.float32)
        return out
