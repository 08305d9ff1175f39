"""Fetch the wheels that part 3 of ``gpu_check.sh`` needs on a bare GPU machine.

The lent GPU machine has torch, transformers, accelerate and peft, and no network. The
SIG-GRPO step also imports trl, datasets, langgraph, pydantic and the project. This
script (run here, where the package registry is reachable) finds the distributions that
importing those loads, leaves out the ones the GPU machine already has, downloads each
one's wheel for the GPU machine's Python and platform (``--no-deps``: the set is already
closed), builds the project's own wheel beside them, and refuses a set over the 64 MiB
that one call can carry: the wheels go into numbered parts (``DIR/1``, ``DIR/2``, ...)
of at most ``--part-mib`` each, one part per call (pyarrow alone is 55 MiB), each
installed into the same environment, which the GPU machine keeps between calls while it
stays warm.

    python benchmarks/gpu_wheels.py .gpu-wheels --python-version 3.11
    # then, on the GPU machine, one call per part, the last one running the check:
    benchmarks/gpu_check.sh --wheels .gpu-wheels/1 --install-only   # carry .gpu-wheels/1
    benchmarks/gpu_check.sh --wheels .gpu-wheels/2                  # carry .gpu-wheels/2
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY_LIMIT = 64 * 2 ** 20
PROBE = ("import promed_agents.trainers.grpo_trainer, promed_agents.graphs.token_sequence, trl, "
         "datasets; from trl import GRPOTrainer")
ON_THE_GPU_MACHINE = {
    # torch, transformers, accelerate, peft and what they need
    "torch", "transformers", "accelerate", "peft", "numpy", "huggingface-hub", "tokenizers",
    "safetensors", "pyyaml", "regex", "tqdm", "filelock", "packaging", "psutil", "jinja2",
    "markupsafe", "sympy", "mpmath", "fsspec", "typing-extensions", "networkx", "setuptools",
    "triton", "promed-agents",
}


def normalized(name: str) -> str:
    return name.lower().replace("_", "-")


def needed(extra_present: set[str]) -> dict[str, str]:
    """{distribution: version} that the probe imports and the GPU machine lacks."""
    code = (f"{PROBE}\nimport sys, json, importlib.metadata as md\n"
            "tops = md.packages_distributions()\n"
            "print(json.dumps(sorted({d for m in list(sys.modules) "
            "for d in tops.get(m.split('.')[0], [])})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    names = json.loads(done.stdout.strip().splitlines()[-1])
    present = ON_THE_GPU_MACHINE | {normalized(n) for n in extra_present}
    return {normalized(n): metadata.version(n) for n in names
            if normalized(n) not in present and not normalized(n).startswith("nvidia-")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--python-version", default=f"{sys.version_info.major}."
                        f"{sys.version_info.minor}", help="The GPU machine's Python (X.Y).")
    parser.add_argument("--platform", default="manylinux_2_28_x86_64")
    parser.add_argument("--present", nargs="*", default=[],
                        help="More distributions the GPU machine already has.")
    parser.add_argument("--part-mib", type=float, default=60.0,
                        help="At most this many MiB of wheels per part (one call).")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    wanted = needed(set(args.present))
    platforms = [args.platform, "manylinux2014_x86_64", "manylinux_2_17_x86_64"]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
               "--only-binary=:all:", "--python-version", args.python_version,
               "-d", str(args.folder)]
    for platform in platforms:
        command += ["--platform", platform]
    subprocess.run(command + [f"{n}=={v}" for n, v in sorted(wanted.items())], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(args.folder), str(ROOT)], check=True)
    limit = min(args.part_mib * 2 ** 20, CARRY_LIMIT)
    wheels = sorted(args.folder.glob("*.whl"), key=lambda f: -f.stat().st_size)
    if wheels[0].stat().st_size > limit:
        sys.exit(f"gpu_wheels: {wheels[0].name} alone is over {limit / 2 ** 20:.0f} MiB, "
                 "more than one call carries")
    parts: list[list[Path]] = []
    for wheel in wheels:  # first fit, largest first
        part = next((p for p in parts if sum(f.stat().st_size for f in p)
                     + wheel.stat().st_size <= limit), None)
        if part is None:
            parts.append(part := [])
        part.append(wheel)
    for number, part in enumerate(parts, start=1):
        folder = args.folder / str(number)
        folder.mkdir(exist_ok=True)
        size = sum(f.stat().st_size for f in part) / 2 ** 20
        for wheel in part:
            shutil.move(str(wheel), folder / wheel.name)
        print(f"{folder}: {len(part)} wheels, {size:.1f} MiB")


if __name__ == "__main__":
    main()
