"""Dataset conversion speed and memory: a ZIP of PNG images and a large CSV.

    python benchmarks/bench_dataset_conversion.py                  # 50,000 PNGs, 200 MB CSV
    python benchmarks/bench_dataset_conversion.py --csv-mb 1024    # the 1 GB CSV case

Each conversion runs in a fresh subprocess that reports its wall time and peak resident memory
(its own and its decoding workers', from getrusage). Targets (issue 3): ≥ 3,000 images/s for 32×32
PNGs on 2 cores; a 1 GB CSV converted with peak memory under 1 GB. Prints a final SUMMARY line.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from trainer_app.datasets import ProcessOptions, process_upload
source, name, output, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
started = time.perf_counter()
result = process_upload(Path(source), original_name=name, output_dir=Path(output),
                        options=ProcessOptions(workers=workers))
elapsed = time.perf_counter() - started
usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print(json.dumps({"seconds": elapsed, "cpu_seconds": sum(u.ru_utime + u.ru_stime for u in usage), "samples": sum(result.meta.splits.values()),
                  "shape": result.meta.input_shape, "warnings": [w.code for w in result.warnings],
                  "self_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def make_png_zip(path: Path, count: int, size: int = 32, classes: int = 10) -> None:
    from PIL import Image
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for index in range(count):
            # Smooth gradients plus noise: compresses like photos do, not like pure noise.
            base = np.linspace(0, 255, size, dtype=np.float32)
            pixels = (base[None, :, None] * rng.random(3) + base[:, None, None] * rng.random(3)) / 2
            pixels = np.clip(pixels + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            archive.writestr(f"images/class{index % classes}/{index:06d}.png", buffer.getvalue())


def make_csv(path: Path, megabytes: int) -> int:
    """20 numeric columns, 2 text columns, a text target; 16 distinct blocks of rows written in turn."""
    rng = np.random.default_rng(0)
    blocks = []
    for _ in range(16):
        rows = 20_000
        numbers = [np.char.mod("%.4f", rng.normal(size=rows) * 10 ** rng.integers(0, 3)) for _ in range(20)]
        colour = rng.choice(["red", "green", "blue", "yellow"], rows)
        city = rng.choice([f"city{i}" for i in range(40)], rows)
        label = rng.choice(["low", "mid", "high"], rows)
        blocks.append("".join(",".join(row) + "\n" for row in zip(*numbers, colour, city, label)))
    header = ",".join([f"f{i}" for i in range(20)] + ["colour", "city", "label"]) + "\n"
    target, written, rows = megabytes * 1024 * 1024, 0, 0
    with open(path, "w") as handle:
        handle.write(header)
        while written < target:
            block = blocks[rows // 20_000 % 16]
            handle.write(block)
            written += len(block)
            rows += 20_000
    return rows


def convert(source: Path, name: str, workers: int) -> dict:
    output = Path(tempfile.mkdtemp(prefix="bench-out-", dir=source.parent)) / "dataset"
    completed = subprocess.run([sys.executable, "-c", CHILD, str(source), name, str(output), str(workers)],
                               cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if completed.returncode:
        raise SystemExit(completed.stderr)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--csv-mb", type=int, default=200, help="CSV size in MB (1024 for the 1 GB case)")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes compared with 1 (in-process)")
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--skip-csv", action="store_true")
    arguments = parser.parse_args()
    summary = []
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other work slows these figures)")
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as folder:
        folder = Path(folder)
        if not arguments.skip_images:
            started = time.perf_counter()
            make_png_zip(folder / "images.zip", arguments.images)
            print(f"generated {arguments.images:,} PNGs of 32x32 ({(folder / 'images.zip').stat().st_size / 1e6:.0f} MB "
                  f"zip) in {time.perf_counter() - started:.1f} s")
            rates = {}
            for workers in sorted({1, arguments.workers}):
                figures = convert(folder / "images.zip", "images.zip", workers)
                rate = rates[workers] = figures["samples"] / figures["seconds"]
                print(f"image zip, {workers} worker(s): {figures['samples']:,} images in {figures['seconds']:.1f} s = "
                      f"{rate:,.0f} images/s ({figures['samples'] / figures['cpu_seconds']:,.0f} per CPU-second); peak RSS {figures['self_peak_mb']:.0f} MB (+ workers "
                      f"{figures['workers_peak_mb']:.0f} MB each at most)")
            summary.append(" ".join(f"images_per_s_workers{workers}={rate:.0f}" for workers, rate in rates.items())
                           + " (target>=3000)")
        if not arguments.skip_csv:
            started = time.perf_counter()
            rows = make_csv(folder / "table.csv", arguments.csv_mb)
            size = (folder / "table.csv").stat().st_size
            print(f"generated a {size / 2**20:,.0f} MiB CSV with {rows:,} rows × 24 columns in "
                  f"{time.perf_counter() - started:.1f} s")
            (folder / "images.zip").unlink(missing_ok=True)
            figures = convert(folder / "table.csv", "table.csv", 1)
            print(f"csv: {size / 2**20:,.0f} MiB in {figures['seconds']:.1f} s = {size / 2**20 / figures['seconds']:.1f} "
                  f"MiB/s ({figures['cpu_seconds']:.1f} CPU-s); peak RSS {figures['self_peak_mb']:.0f} MB; output {figures['shape']}")
            summary.append(f"csv_mb={size / 2**20:.0f} csv_s={figures['seconds']:.1f} "
                           f"csv_peak_rss_mb={figures['self_peak_mb']:.0f} (target<1024)")
    print("SUMMARY " + " ".join(summary))


if __name__ == "__main__":
    main()
