# Two environments, as in production: nebari (and this plugin) runs where
# `nebari deploy` runs; mlflow runs in the server image and in user pods.
# nebari 2025.10 pins cryptography<43 and mlflow 3.17 needs >=43, so they
# cannot share one virtualenv, and should not.
PYTHON ?= python3
# playwright-core drives Debian's Chromium (no browser download of its own).
PLAYWRIGHT_CORE_VERSION := 1.65.1
MLFLOW_VERSION := $(shell sed -n 's/^MLFLOW_VERSION = "\(.*\)"/\1/p' src/nebari_mlflow_plugin/versions.py)

.PHONY: install system-deps test lint docs clean
# What the public plugin (2025.10.2) runs: the tests upgrade a database it created.
OLD_MLFLOW_VERSION := 3.3.2
# The public plugin's wheel: the takeover tests read its Terraform templates in place.
PUBLIC_PLUGIN_VERSION := 2025.10.2
PUBLIC_PLUGIN_WHEEL := .tools/public-plugin/nebari_mlflow_plugin-$(PUBLIC_PLUGIN_VERSION)-py3-none-any.whl

install: system-deps .venv/.installed .venv-mlflow/.installed .venv-pod/.installed \
	.venv-mlflow-$(OLD_MLFLOW_VERSION)/.installed $(PUBLIC_PLUGIN_WHEEL) \
	.tools/node_modules/.bin/azurite-blob .tools/node_modules/playwright-core/.installed-$(PLAYWRIGHT_CORE_VERSION) \
	.venv-hub/.installed .tools/node_modules/.bin/configurable-http-proxy

# PostgreSQL, nginx, Chromium, Node.js: real processes the end-to-end tests run.
system-deps:
	bash scripts/system-deps.sh

# Azurite (Azure Blob emulator) from npm, project-local.
.tools/node_modules/.bin/azurite-blob:
	npm install --silent --no-audit --no-fund --prefix .tools azurite

# playwright-core (pinned) for the browser journey test; it never downloads a browser.
.tools/node_modules/playwright-core/.installed-$(PLAYWRIGHT_CORE_VERSION):
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund --save-exact --prefix .tools \
		playwright-core@$(PLAYWRIGHT_CORE_VERSION)
	touch $@

# A real JupyterHub for the auth tests (what Nebari 2025.10's z2jh 4.2.0 runs), apart
# from nebari's environment; and its proxy.
JUPYTERHUB_VERSION := 5.3.*
CHP_VERSION := 5.3.0
.venv-hub/.installed:
	$(PYTHON) -m venv .venv-hub
	.venv-hub/bin/pip install --quiet --upgrade pip
	.venv-hub/bin/pip install --quiet "jupyterhub==$(JUPYTERHUB_VERSION)"
	touch $@

.tools/node_modules/.bin/configurable-http-proxy:
	npm install --silent --no-audit --no-fund --save-exact --prefix .tools \
		configurable-http-proxy@$(CHP_VERSION)

.venv/.installed: pyproject.toml
	$(PYTHON) -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -e '.[test]'
	touch $@

.venv-mlflow/.installed: pyproject.toml requirements/mlflow-env.txt
	$(PYTHON) -m venv .venv-mlflow
	.venv-mlflow/bin/pip install --quiet --upgrade pip
	.venv-mlflow/bin/pip install --quiet mlflow==$(MLFLOW_VERSION) -r requirements/mlflow-env.txt
	.venv-mlflow/bin/pip install --quiet --no-deps -e .
	touch $@

# A user's conda environment in a pod: MLflow and a kernel, nothing of this project
# (the notebook package reaches it the way it reaches user pods: mounted files).
.venv-pod/.installed: src/nebari_mlflow_plugin/versions.py
	$(PYTHON) -m venv .venv-pod
	.venv-pod/bin/pip install --quiet --upgrade pip
	.venv-pod/bin/pip install --quiet mlflow==$(MLFLOW_VERSION) ipykernel
	touch $@

# The MLflow the public plugin deploys, with the PostgreSQL driver: it creates the
# database tests/e2e/test_migrations.py upgrades (SQLAlchemy 2.1 postdates it and breaks it);
# boto3: it serves artifacts from the MinIO-like store tests/e2e/test_takeover.py copies.
.venv-mlflow-$(OLD_MLFLOW_VERSION)/.installed:
	$(PYTHON) -m venv .venv-mlflow-$(OLD_MLFLOW_VERSION)
	.venv-mlflow-$(OLD_MLFLOW_VERSION)/bin/pip install --quiet --upgrade pip
	.venv-mlflow-$(OLD_MLFLOW_VERSION)/bin/pip install --quiet mlflow==$(OLD_MLFLOW_VERSION) psycopg2-binary "sqlalchemy<2.1" boto3
	touch $@

$(PUBLIC_PLUGIN_WHEEL): .venv/.installed
	.venv/bin/pip download --quiet --no-deps --dest .tools/public-plugin \
		nebari-mlflow-plugin==$(PUBLIC_PLUGIN_VERSION)

# The two environments' suites run side by side: most of the time is spent waiting on
# servers, databases and hubs the tests start, so three workers plus the MLflow side's
# one keep 2 cores busy (the MLflow side's output follows the nebari side's).
test: install
	@mkdir -p build; status=0; \
	.venv-mlflow/bin/pytest -p no:cacheprovider tests/notebook tests/server \
		> build/mlflow-side-tests.log 2>&1 & mlflow_side=$$!; \
	.venv/bin/pytest -n 3 --dist loadfile tests/plugin tests/e2e || status=1; \
	wait $$mlflow_side || status=1; \
	echo "--- tests/notebook tests/server (the MLflow environment) ---"; \
	cat build/mlflow-side-tests.log; exit $$status

# The documentation site (MkDocs Material, docs/): broken links or anchors fail it.
# tests/plugin/test_docs.py builds it too, so `make test` (and CI) does.
docs: .venv/.installed
	NO_MKDOCS_2_WARNING=1 PYTHONPATH=src .venv/bin/mkdocs build --strict

lint: install
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/ruff format --check src tests benchmarks

clean:
	rm -rf .venv .venv-mlflow .venv-pod .venv-hub .venv-mlflow-$(OLD_MLFLOW_VERSION) .tools build dist
