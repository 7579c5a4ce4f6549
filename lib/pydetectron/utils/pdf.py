"""A small PDF writer: one page per picture, each embedded as a JPEG.

Used to merge the pictures of `infer_simple.py` into one document (and to write a
single-page PDF per image) without any external tool. A page is exactly the size of
its picture in PDF points (1 px = 1 pt), so pages keep the pictures' proportions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np


def _jpeg_bytes(image_bgr: np.ndarray, quality: int) -> bytes:
    if image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(
            f"a PDF page needs an HxWx3 uint8 BGR picture, got {image_bgr.dtype} {tuple(image_bgr.shape)}"
        )
    ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not JPEG-encode a {tuple(image_bgr.shape)} picture")
    return encoded.tobytes()


class PdfImageWriter:
    """Collect pictures with `add_page`, then `save(path)` writes the PDF.

    Pages hold JPEG data only (a few hundred KB each), so long documents stay cheap.
    """

    def __init__(self, jpeg_quality: int = 92) -> None:
        self.jpeg_quality = jpeg_quality
        self._pages: list[tuple[int, int, bytes]] = []

    def __len__(self) -> int:
        return len(self._pages)

    def add_page(self, image_bgr: np.ndarray) -> None:
        """Append one page showing `image_bgr` (HxWx3 uint8, BGR)."""
        height, width = image_bgr.shape[:2]
        self._pages.append((width, height, _jpeg_bytes(image_bgr, self.jpeg_quality)))

    def add_image_file(self, path: str | os.PathLike) -> None:
        """Append one page showing an image file (anything OpenCV reads)."""
        image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"could not read picture '{path}' for the PDF")
        self.add_page(image)

    def to_bytes(self) -> bytes:
        """The whole document."""
        if not self._pages:
            raise ValueError("a PDF needs at least one page")
        objects: list[bytes] = []  # object i + 1 is objects[i]
        num_pages = len(self._pages)
        page_ids = [3 + 3 * i for i in range(num_pages)]
        kids = " ".join(f"{pid} 0 R" for pid in page_ids)
        objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
        objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {num_pages} >>".encode())
        for (width, height, jpeg), page_id in zip(self._pages, page_ids):
            image_id, content_id = page_id + 1, page_id + 2
            objects.append(
                (
                    f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] "
                    f"/Resources << /XObject << /Im0 {image_id} 0 R >> >> /Contents {content_id} 0 R >>"
                ).encode()
            )
            objects.append(
                (
                    f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
                    f"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode /Length {len(jpeg)} >>\n"
                ).encode()
                + b"stream\n"
                + jpeg
                + b"\nendstream"
            )
            drawing = f"q {width} 0 0 {height} 0 0 cm /Im0 Do Q".encode()
            objects.append(f"<< /Length {len(drawing)} >>\nstream\n".encode() + drawing + b"\nendstream")
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
        xref_at = len(out)
        out += f"xref\n0 {len(objects) + 1}\n".encode()
        out += b"0000000000 65535 f \n"
        for offset in offsets:
            out += f"{offset:010d} 00000 n \n".encode()
        out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
        return bytes(out)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the document to `path` (through a temporary file, so no half-written PDF)."""
        path = Path(path)
        data = self.to_bytes()
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path


def write_pdf(pictures: Iterable[np.ndarray], path: str | os.PathLike, jpeg_quality: int = 92) -> Path:
    """One PDF with a page per BGR picture."""
    writer = PdfImageWriter(jpeg_quality)
    for picture in pictures:
        writer.add_page(picture)
    return writer.save(path)


def merge_images_to_pdf(
    image_paths: Iterable[str | os.PathLike], path: str | os.PathLike, jpeg_quality: int = 92
) -> Path:
    """One PDF with a page per image file, in the given order."""
    writer = PdfImageWriter(jpeg_quality)
    for image_path in image_paths:
        writer.add_image_file(image_path)
    return writer.save(path)
