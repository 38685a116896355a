#!/usr/bin/env bash
# One prepared run on a lent GPU machine (the device tool): wheels the machine lacks (.whl/, made by
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d .whl av==18.1.0 omegaconf==2.4.0 scikit-video==1.1.11
# and carried), the CUDA tests, then the GPU section of make bench (benchmarks/gpu.py); everything it
# prints goes to $OUT/gpu_run.log and the section's JSON to $OUT/gpu.json. GPU_RUN_STEPS: tests,gpu.
set -u
OUT="${OUT:-/tmp/gpu-run}"; mkdir -p "$OUT"
STEPS="${GPU_RUN_STEPS:-tests,gpu}"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled MPLBACKEND=Agg PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
{
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  fi
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
  python3 -c "import torch, av, omegaconf; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  case ",$STEPS," in *,tests,*)
    timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_device_reconstruct.py -k cuda 2>&1 | tail -15;;
  esac
  case ",$STEPS," in *,gpu,*)
    timeout 330 python3 - <<'PY'
import json, os, sys, time
sys.path.insert(0, "benchmarks")
import gpu
start = time.time()
res = gpu.run(quick=os.environ.get("GPU_RUN_QUICK") == "1")
res["seconds"] = time.time() - start
json.dump(res, open(os.path.join(os.environ["OUT"], "gpu.json"), "w"), indent=2, default=str)
print(gpu.report(res))
PY
  ;; esac
} 2>&1 | tee "$OUT/gpu_run.log"
