# SwiftSKD — every target depends on `deps`, so a fresh Debian machine needs no other step.
SWIFT      ?= swift
CONFIG     ?= release
APT_PKGS   := libopenblas-dev liblapacke-dev libpng-dev libjpeg-dev pkg-config libopenmpi-dev openmpi-bin
DEMO_PKGS  := mate-backgrounds
SWIFTFLAGS := -c $(CONFIG)

.PHONY: deps build test bench demo clean

## Install the Debian packages that are missing (apt-get update only when something is missing).
deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	python3 -c "import numpy" 2>/dev/null || missing="$$missing python3-numpy"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

## Release build of every product.
build: deps
	$(SWIFT) build $(SWIFTFLAGS)

## The test suite (release mode: the model parity and gradient tests are compute-heavy).
## The weight converter's tests run first (NumPy only), so that swift test's summary closes the output.
test: deps
	python3 Tools/test_convert_pytorch_weights.py
	$(SWIFT) build $(SWIFTFLAGS) --build-tests
	$(SWIFT) test $(SWIFTFLAGS) --skip-build --disable-swift-testing

## The embedded default (the README's main command): installs Debian's mate-backgrounds photographs if missing,
## builds `skd` in release mode and runs `skd demo` — a teacher, students distilled with skd and none, a table and
## a side-by-side PNG in runs/demo. Scale it up with e.g. DEMO_ARGS="--teacher-iterations 4000 --student-iterations 2000".
DEMO_ARGS  ?=
demo: deps
	@start=$$(date +%s); \
	missing=""; for p in $(DEMO_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
	fi; \
	$(SWIFT) build $(SWIFTFLAGS) --product skd || exit 1; \
	"$$($(SWIFT) build $(SWIFTFLAGS) --show-bin-path)/skd" demo $(DEMO_ARGS) || exit 1; \
	echo "make demo wall time (install, build and run): $$(( $$(date +%s) - start )) s"

## The benchmark suite (Docs/performance.md): kernels, blocks, 512x512 inference of every preset and the
## distillation training step; a table on the terminal and .build/bench-results.json. About 15 minutes and
## 14 GB at peak (the full-SKD step); `swift run -c release skd-bench --list` / FILTER... for a subset.
## With ../shared/peers present it ends with SwiftSKD against ONNX Runtime, interleaved (onnxruntime from PyPI).
bench: deps
	@python3 -c "import onnxruntime" 2>/dev/null || pip install -q onnxruntime numpy || echo "onnxruntime unavailable: the peer comparison will be skipped"
	$(SWIFT) run $(SWIFTFLAGS) skd-bench

clean:
	rm -rf .build
