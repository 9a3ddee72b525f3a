# SwiftSKD — every target depends on `deps`, so a fresh Debian machine needs no other step.
SWIFT      ?= swift
CONFIG     ?= release
APT_PKGS   := libopenblas-dev liblapacke-dev libpng-dev libjpeg-dev pkg-config libopenmpi-dev openmpi-bin
DEMO_PKGS  := mate-backgrounds
SWIFTFLAGS := -c $(CONFIG)

.PHONY: deps build test bench demo clean fuzz fuzz-options sanitize docs

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
	@python3 -c "import onnxruntime" 2>/dev/null || python3 -m pip install -q onnxruntime 2>/dev/null \
	  || python3 -m pip install -q --break-system-packages onnxruntime \
	  || echo "onnxruntime unavailable: the ONNX export parity tests (SKDExportTests) fail under CI=true"

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

## The DocC site, offline (swiftlang/swift-docc-plugin and the toolchain's docc): the SwiftSKD catalog (overview,
## layer diagram, tutorials; Sources/SwiftSKD/SwiftSKD.docc, code in Snippets/) combined with the API reference of
## every library target, as a static site in $(DOCS_DIR) (serve the folder, open /documentation/swiftskd).
## The plugin builds the targets in debug mode to extract their symbols.
DOCS_DIR     ?= .build/docs
DOCS_TARGETS := SKDTensor SKDNN SKDImage SKDModels SKDDistill SwiftSKD
docs: deps
	$(SWIFT) package --allow-writing-to-directory $(DOCS_DIR) generate-documentation \
	  $(foreach t,$(DOCS_TARGETS),--target $(t)) --enable-experimental-combined-documentation \
	  --output-path $(DOCS_DIR) --transform-for-static-hosting
	@echo "documentation: $(DOCS_DIR)/documentation/swiftskd/index.html"

## libFuzzer (the Swift toolchain's clang and swiftc, with AddressSanitizer; UBSan for C) on the C image shim —
## every byte string through the PNG and JPEG decoders, decoded images re-encoded and round-tripped — and on the
## safetensors reader, and on the options parsers (YAML files and --set overrides).
## The seed corpus is written by the shim's own encoders (Tools/fuzz/make_seeds.c); the corpus grows in
## .build/fuzz/corpus. FUZZ_SECONDS bounds each harness's run (CI: 60); findings land in .build/fuzz/artifacts
## and fail.
FUZZ_SECONDS ?= 120
FUZZ_CC      ?= $(dir $(shell readlink -f $$(command -v $(SWIFT))))clang
FUZZ_FLAGS   := -g -O1 -fuse-ld=lld -ICSystem/CImageShim/include $$(pkg-config --cflags libpng)
FUZZ_LIBS    := $$(pkg-config --libs libpng libjpeg)
fuzz: deps
	mkdir -p .build/fuzz/seeds .build/fuzz/corpus .build/fuzz/artifacts
	$(FUZZ_CC) $(FUZZ_FLAGS) Tools/fuzz/make_seeds.c CSystem/CImageShim/CImageShim.c $(FUZZ_LIBS) -o .build/fuzz/make-seeds
	.build/fuzz/make-seeds .build/fuzz/seeds
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  Tools/fuzz/fuzz_image_shim.c CSystem/CImageShim/CImageShim.c $(FUZZ_LIBS) -o .build/fuzz/fuzz-image-shim
	.build/fuzz/fuzz-image-shim -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
	  -artifact_prefix=.build/fuzz/artifacts/ -print_final_stats=1 .build/fuzz/corpus .build/fuzz/seeds
	@# The safetensors reader (header JSON, dtypes, shapes, offsets): SKDTensor's sources and the harness in one
	@# module built by swiftc -sanitize=fuzzer,address; seeds from Tools/fuzz/make_safetensors_seeds.py.
	mkdir -p .build/fuzz/st-seeds .build/fuzz/st-corpus .build/fuzz/modules/CSKDKernels
	printf 'module CSKDKernels {\n    header "$(CURDIR)/CSystem/CSKDKernels/include/CSKDKernels.h"\n    export *\n}\n' \
	  > .build/fuzz/modules/CSKDKernels/module.modulemap
	for c in CSystem/CSKDKernels/*.c; do \
	  $(FUZZ_CC) -O2 -fsanitize=address -ICSystem/CSKDKernels/include -c $$c -o .build/fuzz/$$(basename $$c .c).o || exit 1; \
	done
	$(dir $(FUZZ_CC))swiftc -sanitize=fuzzer,address -parse-as-library -O -suppress-warnings -module-name SKDTensor -package-name SwiftSKD \
	  Tools/fuzz/fuzz_safetensors.swift Sources/SKDTensor/*.swift Sources/SKDTensor/Ops/*.swift \
	  -I CSystem/COpenBLAS -I CSystem/CLAPACKE -I .build/fuzz/modules/CSKDKernels \
	  $(patsubst CSystem/CSKDKernels/%.c,.build/fuzz/%.o,$(wildcard CSystem/CSKDKernels/*.c)) \
	  -lopenblas -llapacke -o .build/fuzz/fuzz-safetensors
	python3 Tools/fuzz/make_safetensors_seeds.py .build/fuzz/st-seeds
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tools/fuzz/lsan.supp:print_suppressions=0 \
	  .build/fuzz/fuzz-safetensors -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	  -artifact_prefix=.build/fuzz/artifacts/ -print_final_stats=1 .build/fuzz/st-corpus .build/fuzz/st-seeds
	@if [ "$(FUZZ_OPTIONS)" != 0 ]; then $(MAKE) --no-print-directory fuzz-options FUZZ_SECONDS=$(FUZZ_SECONDS); fi

## The options parsers alone (also the last part of `make fuzz` unless FUZZ_OPTIONS=0).
FUZZ_OPTIONS ?= 1
fuzz-options: deps
	@# The options parsers (YAML files and --set overrides, Tools/SKDFuzzOptions): SwiftPM builds the library
	@# targets with -sanitize=fuzzer,address in a build folder of its own; the harness is linked by hand with
	@# libFuzzer's main (an executable built by SwiftPM brings a main of its own). Seeds: Tools/fuzz/options-seeds.
	mkdir -p .build/fuzz/opt-corpus .build/fuzz/artifacts
	$(SWIFT) build $(SWIFTFLAGS) --scratch-path .build/fuzz/swift --target SKDDistill -Xswiftc -sanitize=fuzzer,address
	B=$$($(SWIFT) build $(SWIFTFLAGS) --scratch-path .build/fuzz/swift --show-bin-path); \
	$(dir $(FUZZ_CC))swiftc -sanitize=fuzzer,address -parse-as-library -O -DFUZZING -suppress-warnings \
	  Tools/SKDFuzzOptions/FuzzOptions.swift -I $$B/Modules -I CSystem/COpenBLAS -I CSystem/CLAPACKE \
	  -Xcc -fmodule-map-file=$$B/CSKDKernels.build/module.modulemap -Xcc -fmodule-map-file=$$B/CImageShim.build/module.modulemap \
	  -I .build/fuzz/swift/checkouts/Yams/Sources/CYaml/include \
	  $$(for t in CImageShim CSKDKernels CYaml Yams SKDTensor SKDNN SKDImage SKDModels SKDDistill; do find $$B/$$t.build -name '*.o'; done) \
	  $$(pkg-config --libs-only-L openblas) -lopenblas -llapacke -lpng16 -ljpeg -o .build/fuzz/fuzz-options
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tools/fuzz/lsan.supp:print_suppressions=0 \
	  .build/fuzz/fuzz-options -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	  -artifact_prefix=.build/fuzz/artifacts/ -print_final_stats=1 .build/fuzz/opt-corpus Tools/fuzz/options-seeds

## The data and tensor test targets under AddressSanitizer (Swift and C) and UndefinedBehaviorSanitizer (C: the
## image shim, the row kernels; swiftc has no -sanitize=undefined on Linux, and Swift traps on overflow and bounds
## itself). UB traps instead of calling a runtime, so no extra library is linked. Flags on the command line, a
## separate build folder; Package.swift carries no unsafeFlags. Release mode, as every build here.
SANITIZE_FLAGS := -Xswiftc -sanitize=address -Xcc -fsanitize=address -Xcc -fsanitize=undefined -Xcc -fsanitize-trap=undefined
sanitize: deps
	$(SWIFT) build $(SWIFTFLAGS) --build-tests --build-path .build/sanitize $(SANITIZE_FLAGS)
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tools/sanitize/lsan.supp:print_suppressions=0 \
	  $(SWIFT) test $(SWIFTFLAGS) --skip-build --build-path .build/sanitize --disable-swift-testing \
	  --filter 'SKDImageTests|SKDTensorTests'

clean:
	rm -rf .build
