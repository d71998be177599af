# The two commands a newcomer needs (both install what they need first):
#   make demo   bring an example project up, show it, tear it down
#   make test   run the whole test suite (unit tests; kernel tests too when run as root)
PY := .venv/bin/python
EXAMPLE ?= examples/three-tier

.PHONY: setup test unit demo bench clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest -q -p no:cacheprovider

unit: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

demo: setup
	@bash scripts/demo.sh $(EXAMPLE)

bench: setup
	@bash scripts/bench.sh

clean:
	rm -rf .venv build *.egg-info
