"""The ``source: hub`` half of the COCO keypoint loader: download only what a split needs, unpack zips once.

A Hub dataset repo may hold the layout of :mod:`curricurun.data.pose.coco` as is, or the official zips:
``annotations_trainval<year>.zip`` (holding ``annotations/``) and ``<split>.zip`` (holding ``<split>/``).
Zips are unpacked once into the snapshot folder itself, so it then reads exactly like a local unzipped copy;
a ``.<zip name>.extracted`` marker skips them on later runs.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from curricurun.data.sources import env_true
from curricurun.errors import UserError


def hub_archives(split: str) -> list[str]:
    """The official zips this split may come in: its images, and the annotations of its year (``val2017``)."""
    year = split[-4:]
    return [f"{split}.zip"] + ([f"annotations_trainval{year}.zip"] if year.isdigit() else [])


def _hub_patterns(split: str) -> list[str]:
    """Every file this split may need, in any layout the module docstring lists (the Hub's ``*`` matches
    across ``/``)."""
    layout = [
        f"annotations/person_keypoints_{split}.json",
        f"annotations/{split}.json",
        f"images/{split}/*",
        f"{split}/*",
    ]
    return layout + hub_archives(split)


def download_split(repo_id: str, split: str, revision: str | None) -> Path:
    """``snapshot_download`` of the files ``split`` needs, its zips unpacked; failures become one line."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id=repo_id, repo_type="dataset", revision=revision, allow_patterns=_hub_patterns(split)
        )
    except (OSError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        hint = " (HF_HUB_OFFLINE is set)" if env_true("HF_HUB_OFFLINE") else ""
        raise UserError(
            f"data.path: could not download hub dataset '{repo_id}' (split '{split}'): {reason}; "
            f"check the id, or your network{hint}"
        ) from None
    root = Path(folder)
    for name in hub_archives(split):
        if (root / name).is_file():
            _extract_once(root / name, repo_id)
    return root


def _extract_once(archive: Path, repo_id: str) -> None:
    """Unpack ``archive`` into the folder holding it, unless its marker says that was done.

    It goes to a hidden temporary folder first and is then moved in by renames (each atomic, a whole top-level
    folder at once when it is new): an interrupted run leaves whole files or nothing, and no marker, so the
    next run unpacks again and moves what is still missing. Two processes racing (one per rank) both unpack;
    whichever moves an entry first wins, and the copies are identical.
    """
    marker = archive.parent / f".{archive.name}.extracted"
    if marker.exists():
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", dir=archive.parent))
    try:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(staging)
        _move_into(staging, archive.parent)
    except (OSError, zipfile.BadZipFile) as error:
        raise UserError(f"data.path: could not unpack {archive.name} of hub dataset '{repo_id}': {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    marker.touch()


def _move_into(source: Path, target: Path) -> None:
    """Move the tree ``source`` into ``target``, merging folders and keeping files that are already there."""
    for entry in source.iterdir():
        destination = target / entry.name
        if entry.is_dir() and destination.is_dir():
            _move_into(entry, destination)
        elif not destination.exists():
            try:
                entry.rename(destination)
            except OSError:
                if not destination.exists():  # not another process having moved the same entry first
                    raise
