# Two commands on a fresh machine: `make run` (set up + whole pipeline, offline) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test dagster dagster-live mlflow-ui api lint services services-stop run-prod test-prod

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) (Python 3.11)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

run: setup          ## whole pipeline on the embedded synthetic default, offline
	$(BIN)/market-master run

test: setup         ## the full test suite (what CI runs)
	$(BIN)/python -m pytest market_master_tests -n 2 --dist loadfile --durations=15 -rs

dagster: setup      ## Dagster UI on http://127.0.0.1:3000
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/data/dagster} $(BIN)/python -m market_master.cli dagster-home && \
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/data/dagster} $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

dagster-live: setup ## Dagster UI with market_data on yfinance (switch the schedules on there; README "Going live")
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/data/dagster} $(BIN)/python -m market_master.cli dagster-home && \
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/data/dagster} $(BIN)/dagster dev -w workspace.live.yaml -h 127.0.0.1 -p 3000

mlflow-ui: setup    ## MLflow UI on http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri $$($(BIN)/python -c 'from market_master import settings; print(settings.default_tracking_uri())') \
	  --default-artifact-root $$($(BIN)/python -c 'from market_master import settings; print(settings.default_artifact_location())') \
	  --host 127.0.0.1 --port 5000

api: setup          ## FastAPI on http://127.0.0.1:8000 (Swagger at /docs)
	$(BIN)/uvicorn api.main:app --host 127.0.0.1 --port 8000

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Production mode (deploy/README.md): Postgres + MLflow server + S3 (moto) on loopback, then run against them.
PROD_ENV = eval "$$(deploy/services.sh env)" &&

services: setup     ## start Postgres, moto S3 and the MLflow server (loopback); `make services-stop` stops them
	deploy/services.sh start

services-stop:
	deploy/services.sh stop

run-prod: setup     ## the whole pipeline in production mode against `make services` (small window)
	$(PROD_ENV) $(BIN)/market-master run --days $${DAYS:-130} --signal-days 3 --candidates $${CANDIDATES:-LogReg,HGBT}

test-prod: setup    ## the production-mode tests against `make services` (skipped by `make test` alone)
	$(PROD_ENV) $(BIN)/python -m pytest market_master_tests/production -m production -rs --durations=5
