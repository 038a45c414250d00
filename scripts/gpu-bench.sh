#!/usr/bin/env bash
# The GPU figures of the README, in one run: the detector and the NCS kernels on the CPU and on
# CUDA on the same machine, an `h200 worker` draining queued jobs on each, and nvidia-smi before,
# during and after.
#
#   cargo build --release -p h200 --features cuda      # on a machine with the CUDA toolkit
#   scripts/gpu-bench.sh target/release/h200           # on the GPU machine, from the repo root
#
# Needs: an NVIDIA driver and the CUDA 13 runtime libraries (libcudart, libcublas, libcurand) on
# the library path, nvidia-smi, and python3 with Pillow (scikit-image too, for its `coffee`
# photograph; without it the example photo is scaled up instead). SECTIONS (default: all)
# chooses among `detect ncs worker`; QUICK=1 runs fewer repetitions.
set -uo pipefail

H200=${1:-${H200_BIN:-target/release/h200}}
SECTIONS=${SECTIONS:-detect ncs worker}
WORK=$(mktemp -d)
PHOTO=tests/fixtures/desk-two-mugs.png
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT

section() { printf '\n== %s\n' "$*"; }
reps() { if [ "${QUICK:-0}" = 1 ]; then echo "$2"; else echo "$1"; fi; }

section "machine"
date -u '+%Y-%m-%d %H:%M UTC'
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
nvidia-smi | sed -n 3p
command -v nvcc >/dev/null && nvcc --version | tail -n 2
echo "CPU: $(nproc) threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$H200" --version || { echo "FATAL: $H200 does not run" >&2; exit 1; }

section "nvidia-smi before"
nvidia-smi --query-gpu=memory.used,memory.total,utilization.gpu,temperature.gpu,power.draw \
  --format=csv
# Sampled every 200 ms while the benchmarks run, for the peak memory and utilisation.
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits -lms 200 \
  >"$WORK/smi.csv" 2>/dev/null &

# A 1920x1080 photograph: scikit-image's `coffee` (a real photo of a cup) scaled to fill it.
python3 - "$PHOTO" "$WORK/photo-1080p.jpg" <<'PY' || cp "$PHOTO" "$WORK/photo-1080p.jpg"
import sys
from PIL import Image
try:
    from skimage import data
    image = Image.fromarray(data.coffee())
    source = "scikit-image coffee"
except Exception:
    image = Image.open(sys.argv[1]).convert("RGB")
    source = sys.argv[1]
image.resize((1920, 1080), Image.LANCZOS).save(sys.argv[2], quality=92)
print(f"1920x1080 photo from {source}")
PY

if [[ " $SECTIONS " == *" detect "* ]]; then
  section "detector: h200 detect --bench (per pass: decode, letterbox, network, boxes)"
  for image in "$PHOTO" "$WORK/photo-1080p.jpg"; do
    echo "-- $(basename "$image")"
    "$H200" detect "$image" --device cpu | grep -c '"class_name"' | sed 's/^/detections (cpu): /'
    "$H200" detect "$image" --device cuda | grep -c '"class_name"' | sed 's/^/detections (cuda): /'
    for device in cpu cuda; do
      if [ "$device" = cuda ]; then runs=$(reps 100 20); else runs=$(reps 20 5); fi
      for size in shipped 640; do
        size_flag=()
        [ "$size" = 640 ] && size_flag=(--image-size 640)
        for batch in 1 8; do
          timeout 300 "$H200" detect "$image" --device "$device" "${size_flag[@]}" \
            --bench "$runs" --batch "$batch" 2>&1 >/dev/null | grep -E 'passes|error'
        done
      done
    done
  done
fi

if [[ " $SECTIONS " == *" ncs "* ]]; then
  section "NCS kernels: h200 bench ncs (exact cpu vs batched cpu and cuda)"
  timeout 400 "$H200" bench ncs --device cuda --points "$(reps 40000 10000)" \
    --streams 64 --chunks 256,4096
fi

if [[ " $SECTIONS " == *" worker "* ]]; then
  section "h200 worker draining queued jobs (SQLite): CUDA, then CPU"
  for device in cuda cpu; do
    if [ "$device" = cuda ]; then mode=batched; else mode=exact; fi
    echo "-- --device $device --ncs-mode $mode"
    timeout 240 "$H200" bench worker --database-url "sqlite://$WORK/queue-$device.db?mode=rwc" \
      --image "$PHOTO" --analyses "$(reps 400 100)" --ncs-jobs "$(reps 400 100)" \
      --points 1000 --dim 16 --streams 64 --device "$device" --ncs-mode "$mode"
  done
fi

section "nvidia-smi after"
nvidia-smi --query-gpu=memory.used,memory.total,utilization.gpu,temperature.gpu,power.draw \
  --format=csv
kill %1 2>/dev/null
if [ -s "$WORK/smi.csv" ]; then
  awk -F', *' '{ if ($1 > m) m = $1; if ($2 > u) u = $2 }
    END { printf "peak during the run: %d MiB used, %d%% utilisation (%d samples)\n", m, u, NR }' \
    "$WORK/smi.csv"
fi
