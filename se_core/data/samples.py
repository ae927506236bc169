"""Named images for the dashboard: the shipped CIFAR-10 samples and user uploads.

Shipped samples are a few CIFAR-10 *test* images per class, extracted from the JPEG tarball
(:func:`se_core.data.datasets.cifar10_jpeg`) as lossless PNGs named ``<class>_<NNNN>.png``, where
``NNNN`` is the image's number inside the tarball (``cifar10-jpeg/test/<class>/NNNN.jpg``),
so every file traces back to one tarball member. ``PROVENANCE.md`` next to them records the
tarball md5, the indices, the command, the date and the commit.

Uploads go through :func:`decode_named`: every file is decoded by
:func:`se_core.data.images.decode_image`; a bad file becomes one :class:`UploadProblem` (its name,
what was wrong, what to do) and never stops the other files.

CLI: ``python -m se_core.samples --out data/samples --per-class 3``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import io
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from se_core.config import REPO_ROOT, cifar_tarball
from se_core.data.images import ImageError, decode_image, image_digest
from se_core.data.datasets import DataError
from se_core.data.datasets import cifar10_jpeg
from se_core.data.datasets import md5_file
from se_core.util.provenance import git_commit

SAMPLES_DIR = REPO_ROOT / "data" / "samples"
SAMPLE_SUFFIX = ".png"

__all__ = ["SAMPLES_DIR", "NamedImage", "UploadProblem", "Sample", "decode_named", "list_samples",
           "read_sample", "extract_samples", "write_provenance", "main"]


@dataclass(frozen=True)
class NamedImage:
    """A decoded image with the name the user knows it by and the digest of its raw bytes."""

    name: str
    digest: str
    image: Image.Image
    source: str = "upload"


@dataclass(frozen=True)
class UploadProblem:
    """Why one file could not be used; ``message`` says what was wrong and what to do."""

    name: str
    message: str

    def text(self) -> str:
        return f"'{self.name}' could not be used: {self.message}"


def decode_named(files: Iterable[tuple[str, bytes]], source: str = "upload") -> tuple[list[NamedImage], list[UploadProblem]]:
    """Decode ``(name, bytes)`` pairs; bad files become problems, the others images.

    Files with identical bytes are kept once (the first name wins): the same picture twice
    would only duplicate every chart.
    """
    images: list[NamedImage] = []
    problems: list[UploadProblem] = []
    seen: set[str] = set()
    for name, data in files:
        try:
            digest = image_digest(data)
            if digest in seen:
                continue
            img = decode_image(data)
        except ImageError as e:
            problems.append(UploadProblem(name, str(e)))
            continue
        except Exception as e:  # noqa: BLE001 - an upload must never take the page down
            problems.append(UploadProblem(name, f"unexpected decoder failure ({type(e).__name__}); "
                                                "re-save the image as PNG or JPEG and upload it again"))
            continue
        seen.add(digest)
        images.append(NamedImage(name, digest, img, source))
    return images, problems


def list_samples(folder: str | Path = SAMPLES_DIR) -> list[str]:
    """Names (file stems, e.g. ``cat_0000``) of the shipped sample images, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob(f"*{SAMPLE_SUFFIX}") if p.is_file())


def read_sample(name: str, folder: str | Path = SAMPLES_DIR) -> bytes:
    """Raw bytes of shipped sample ``name``; refuses names that are not plain file stems."""
    if not name or Path(name).name != name or name.startswith("."):
        raise FileNotFoundError(f"no sample named {name!r}")
    path = Path(folder) / f"{name}{SAMPLE_SUFFIX}"
    if not path.is_file():
        raise FileNotFoundError(f"no sample named {name!r} in {folder}")
    return path.read_bytes()


# --------------------------------------------------------------------------- extraction


@dataclass(frozen=True)
class Sample:
    """One extracted sample: class, number inside the tarball, index in the split, file written."""

    cls: str
    number: int
    split_index: int
    path: Path
    sha256: str


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _verify_against_tarball(tarball: Path, split: str, wanted: dict[str, np.ndarray]) -> None:
    """Check each sample's pixels equal its tarball member decoded the same way (by member path)."""
    found: set[str] = set()
    with tarfile.open(tarball, "r:gz") as tf:
        for member in tf:
            key = member.name.removeprefix("./")
            if key in wanted:
                data = tf.extractfile(member).read()  # type: ignore[union-attr]
                arr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8)
                if not np.array_equal(arr, wanted[key]):
                    raise RuntimeError(f"{key}: decoded pixels differ from the cached data set; delete .cache and rerun")
                found.add(key)
    missing = set(wanted) - found
    if missing:
        raise RuntimeError(f"tarball has no member(s) {sorted(missing)}: the sample numbering assumption is wrong")


def extract_samples(out: str | Path, per_class: int = 3, split: str = "test",
                    tarball: str | Path | None = None) -> list[Sample]:
    """Write the first ``per_class`` images of each class of ``split`` as ``<class>_<NNNN>.png``.

    The decoded data set is sorted by (class, file number), and the tarball numbers each
    class 0000.. contiguously, so the k-th image of a class is member ``NNNN = k``; this is
    verified pixel for pixel against the tarball members before anything is written.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    data = cifar10_jpeg(split, tarball)
    tarball = Path(tarball or cifar_tarball())
    chosen: list[tuple[str, int, int]] = []
    for k, cls in enumerate(data.classes):
        idx = (data.labels == k).nonzero().flatten()[:per_class].tolist()
        chosen += [(cls, number, int(i)) for number, i in enumerate(idx)]
    wanted = {f"cifar10-jpeg/{split}/{c}/{n:04d}.jpg": data.images[i].numpy() for c, n, i in chosen}
    _verify_against_tarball(tarball, split, wanted)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples = []
    for cls, number, i in chosen:
        png = _png_bytes(data.images[i].numpy())
        path = out / f"{cls}_{number:04d}{SAMPLE_SUFFIX}"
        path.write_bytes(png)
        samples.append(Sample(cls, number, i, path, hashlib.sha256(png).hexdigest()))
    return samples


def write_provenance(out: str | Path, samples: Sequence[Sample], split: str, tarball: str | Path,
                     command: str) -> Path:
    """``PROVENANCE.md``: source tarball and md5, split, indices, command, date, commit."""
    tarball = Path(tarball)
    rows = "\n".join(f"| `{s.path.name}` | {s.cls} | `cifar10-jpeg/{split}/{s.cls}/{s.number:04d}.jpg` | "
                     f"{s.split_index} | `{s.sha256[:16]}` |" for s in samples)
    text = f"""# data/samples

- What: {len(samples)} CIFAR-10 {split} images ({len(samples) // max(1, len({s.cls for s in samples}))} per class),
  the first of each class, shown by the Inspect page when nothing is uploaded.
- Source: `{tarball.name}` (md5 `{md5_file(tarball)}`), described in `shared/data/PROVENANCE.md`
  (CIFAR-10, Krizhevsky 2009, re-encoded as JPEG q75). Each PNG holds exactly the decoded
  pixels of its tarball member (checked pixel for pixel when written); PNG adds no further loss.
- Split: `{split}`. "Split index" is the image's position in `se_core.data.datasets.cifar10_jpeg('{split}')`
  (sorted by class, then file number).
- Command: `{command}`
- Date (UTC): {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M')}
- Code commit: `{git_commit()}`

| file | class | tarball member | split index | sha256 (first 16) |
|---|---|---|---|---|
{rows}
"""
    path = Path(out) / "PROVENANCE.md"
    path.write_text(text)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: extract the samples and write their provenance; prints one line per file."""
    p = argparse.ArgumentParser(prog="python -m se_core.samples", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(SAMPLES_DIR), help="output folder (default: data/samples)")
    p.add_argument("--per-class", type=int, default=3, help="images per class (default 3)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--tarball", default=None, help="CIFAR-10 JPEG tarball (default: shared/data/cifar10-jpeg.tar.gz)")
    args = p.parse_args(argv)
    try:
        samples = extract_samples(args.out, args.per_class, args.split, args.tarball)
    except (DataError, ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    command = "python -m se_core.samples " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in (("out", args.out), ("per_class", args.per_class),
                                                    ("split", args.split)))
    write_provenance(args.out, samples, args.split, args.tarball or cifar_tarball(), command)
    for s in samples:
        print(f"{s.path} {s.cls} split_index={s.split_index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
