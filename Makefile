# LUNA16 toolkit. `make demo` sets everything up and runs the whole pipeline on
# a small synthetic dataset; `make test` runs every test. Variables below can
# be overridden: `make train CACHE=/big/cache EPOCHS=20`.

DATA    ?= data/demo
CACHE   ?= cache/demo
SEG_CACHE ?= cache/demo-seg
# Scans no model of the demo has seen, for `make analyze`.
TEST_DATA ?= data/demo-test
TEST_SERIES ?= 10
TEST_SEED ?= 1007
ANALYSIS ?= $(RUNS)/analysis-demo
RUNS    ?= runs
EPOCHS  ?=
SERIES  ?= 40
SEED    ?= 7
THREADS ?= 2
ARGS    ?=

TORCH_ENV := build/torch.env
# Written by scripts/setup.sh: where torch lives, exported for cargo (tch's
# build script) and for the tests' Python cross-checks (LUNA_PYTHON).
-include $(TORCH_ENV)

CARGO   ?= cargo
BIN     := target/release
PREPCACHE := $(BIN)/prepcache
TRAIN   := $(BIN)/train

.PHONY: all setup build demo test bench data cache train seg-cache seg-train mal-train test-data analyze clean doctor gpu-pack

all: build

$(TORCH_ENV): scripts/setup.sh
	bash scripts/setup.sh

setup:
	bash scripts/setup.sh

build: $(TORCH_ENV)
	$(MAKE) --no-print-directory _build

_build:
	$(CARGO) build --release --workspace --bins

doctor: build
	$(TRAIN) doctor

data: build
	@if [ -f $(DATA)/candidates.csv ]; then \
		echo "data: $(DATA) exists (delete it or set DATA= to regenerate)"; \
	else \
		$(PREPCACHE) synth --out $(DATA) --series $(SERIES) --seed $(SEED); \
	fi

cache: data
	$(PREPCACHE) build --data $(DATA) --out $(CACHE) --threads $(THREADS)

# The demo's run is examples/demo.toml (chapter 12's balanced, augmented
# recipe with momentum 0.9, 36,000 samples, ~5.4 min on two cores), the
# same run tests/learns.rs checks reaches validation ROC AUC >= 0.90.
# EPOCHS=N or ARGS="--flag ..." override it.
DEMO_CONFIG ?= examples/demo.toml

train: cache
	$(TRAIN) --config $(DEMO_CONFIG) --cache $(CACHE) --runs $(RUNS) $(if $(EPOCHS),--epochs $(EPOCHS)) $(ARGS)

# Chapter 13 on the same data: the segmentation cache, then the U-Net run
# of examples/demo-seg.toml (30,000 samples, ~2 min on two cores), the
# run tests/learns.rs checks reaches validation recall >= 0.8.
DEMO_SEG_CONFIG ?= examples/demo-seg.toml

seg-cache: data
	$(PREPCACHE) seg --data $(DATA) --out $(SEG_CACHE) --threads $(THREADS)

seg-train: seg-cache
	$(TRAIN) seg --config $(DEMO_SEG_CONFIG) --cache $(SEG_CACHE) --runs $(RUNS) $(if $(EPOCHS),--epochs $(EPOCHS)) $(ARGS)

# Chapter 14's malignancy model: examples/demo-mal.toml fine-tunes the latest
# demo nodule classifier (head and block4) on the data's
# annotations_with_malignancy.csv (6,000 samples, ~40 s on two cores).
DEMO_MAL_CONFIG ?= examples/demo-mal.toml

mal-train: cache
	@cls=$$(ls -d $(RUNS)/p2ch12/*-cls-demo 2>/dev/null | sort | tail -n 1); \
	if [ -z "$$cls" ]; then echo "mal-train: run make train first" >&2; exit 1; fi; \
	echo "$(TRAIN) --config $(DEMO_MAL_CONFIG) --cache $(CACHE) --malignancy-csv $(DATA)/annotations_with_malignancy.csv --finetune $$cls"; \
	$(TRAIN) --config $(DEMO_MAL_CONFIG) --cache $(CACHE) --runs $(RUNS) \
		--malignancy-csv $(DATA)/annotations_with_malignancy.csv --finetune "$$cls" \
		$(if $(EPOCHS),--epochs $(EPOCHS)) $(ARGS)

test-data: build
	@if [ -f $(TEST_DATA)/candidates.csv ]; then \
		echo "test-data: $(TEST_DATA) exists (delete it or set TEST_DATA= to regenerate)"; \
	else \
		$(PREPCACHE) synth --out $(TEST_DATA) --series $(TEST_SERIES) --seed $(TEST_SEED); \
	fi

# Chapter 14 over the held-out scans with the latest demo runs' models (the
# malignancy model when make mal-train made one).
analyze: test-data
	@seg=$$(ls -d $(RUNS)/p2ch13/*-seg-demo 2>/dev/null | sort | tail -n 1); \
	cls=$$(ls -d $(RUNS)/p2ch12/*-cls-demo 2>/dev/null | sort | tail -n 1); \
	mal=$$(ls -d $(RUNS)/p2ch14/*-cls-demo 2>/dev/null | sort | tail -n 1); \
	if [ -z "$$seg" ] || [ -z "$$cls" ]; then echo "analyze: run make train and make seg-train first" >&2; exit 1; fi; \
	echo "$(TRAIN) analyze --data $(TEST_DATA) --split all --centres balls --flip-average --seg-model $$seg --cls-model $$cls $${mal:+--mal-model $$mal }--out $(ANALYSIS)"; \
	$(TRAIN) analyze --data $(TEST_DATA) --split all --centres balls --flip-average --seg-model "$$seg" --cls-model "$$cls" $${mal:+--mal-model "$$mal"} --out $(ANALYSIS) $(ARGS)

demo: build
	$(TRAIN) doctor
	$(MAKE) --no-print-directory train
	@ckpt=$$(ls -d $(RUNS)/p2ch12/*-cls-demo 2>/dev/null | sort | tail -n 1); \
	if [ -z "$$ckpt" ]; then echo "demo: no run found under $(RUNS)/p2ch12" >&2; exit 1; fi; \
	echo "$(TRAIN) eval --cache $(CACHE) --checkpoint $$ckpt --annotations $(DATA)/annotations.csv"; \
	$(TRAIN) eval --cache $(CACHE) --checkpoint "$$ckpt" --annotations $(DATA)/annotations.csv --num-workers 2 && \
	echo "demo: evaluation of $$ckpt: $$ckpt/eval.json; plots: $$(ls $$ckpt/*.png | tr '\n' ' ')"
	$(MAKE) --no-print-directory seg-train
	@seg=$$(ls -d $(RUNS)/p2ch13/*-seg-demo 2>/dev/null | sort | tail -n 1); \
	if [ -z "$$seg" ]; then echo "demo: no segmentation run found under $(RUNS)/p2ch13" >&2; exit 1; fi; \
	echo "demo: segmentation run $$seg (metrics.jsonl; slices with prediction over label: tensorboard --logdir $(RUNS))"
	$(MAKE) --no-print-directory mal-train
	$(MAKE) --no-print-directory analyze
	@echo "demo: nodules found in the held-out scans: $(ANALYSIS)/nodules.csv, report.json, one picture per scan: $(ANALYSIS)/<seriesuid>.png"

test: $(TORCH_ENV)
	$(MAKE) --no-print-directory _test

_test:
	$(CARGO) build --release --workspace --bins
	@# The CPU decides precision auto, the kernels and so the run's time: name it in the log.
	-$(TRAIN) doctor
	$(CARGO) test --release --workspace
	bash scripts/check_linkage.sh $(TRAIN)

bench: build
	bash scripts/bench.sh

# What scripts/gpu_check.sh needs on a GPU machine without cargo (~55 MiB):
# the stripped binaries, torch-ext's CUDA-relevant test binaries, a 4-scan cache and its
# segmentation cache (under the device tool's 64 MiB carry). Copy gpu-pack/ and scripts/.
gpu-pack: build
	rm -rf gpu-pack && mkdir -p gpu-pack/bin
	strip -o gpu-pack/bin/train $(TRAIN)
	strip -o gpu-pack/bin/prepcache $(PREPCACHE)
	mkdir -p gpu-pack/bin/tests
	$(CARGO) test --release -p torch-ext --no-run --message-format=json 2>/dev/null \
	  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep -E '/deps/(event|fused_optim|host)-' \
	  | while read -r t; do strip -o gpu-pack/bin/tests/$$(basename $$t | sed 's/-[0-9a-f]*$$//') $$t; done
	$(PREPCACHE) synth --out gpu-pack/data --series 4 --seed $(SEED)
	$(PREPCACHE) build --data gpu-pack/data --out gpu-pack/cache --threads $(THREADS)
	$(PREPCACHE) seg --data gpu-pack/data --out gpu-pack/seg-cache
	rm -rf gpu-pack/data
	du -sh gpu-pack
	@echo "gpu-pack: on the GPU machine run: bash scripts/gpu_check.sh --bin gpu-pack/bin"

clean:
	$(CARGO) clean
	rm -rf build data cache runs
