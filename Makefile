# Two entry points for a fresh Debian machine, as root:
#   make demo   install larappp and run its main job against the built-in LARA-R6 simulator
#   make test   install larappp with its test tools and run the whole test suite
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# ppp: Debian's pppd, which tests/kernel runs where the kernel has no PPP (tests/vm installs
# it too, but runs last); systemd and udev: the unit and rule checks (systemd-analyze, udevadm);
# nftables: `nft`, which router mode (nat) runs and `check` reads the NAT rules with;
# iptables: the check's test that it names an iptables(-nft/-legacy) masquerade.
DEB_PACKAGES = iproute2 iputils-ping iperf3 dnsutils procps systemd udev ppp nftables iptables
STAMP = .deps-installed

.PHONY: demo test deps install lint bench fuzz clean vm-image test-vm man sdist

$(STAMP): pyproject.toml Makefile
	@if [ "$$(id -u)" != 0 ]; then echo "run as root: larappp configures interfaces and namespaces" >&2; exit 1; fi
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(PIP) install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

deps: $(STAMP)
install: deps

demo: deps
	$(PYTHON) scripts/demo.py

# pytest exits 5 when it collected nothing: a suite that did not run is a failure, said so.
TESTS ?= tests
test: deps
	@$(PYTHON) -m pytest -q $(TESTS); status=$$?; \
	if [ $$status = 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$status

# The real pppd runs in a small QEMU VM (the kernel here has no PPP): tests/vm builds it
# on first use from Debian packages, cached in /var/cache/larappp-vm (kept by `clean`).
vm-image:
	bash scripts/vm/build.sh

test-vm: deps vm-image
	$(PYTHON) -m pytest -q -m vm tests/vm

lint: deps
	ruff check larappp tests scripts
	mypy larappp

bench: deps
	$(PYTHON) scripts/bench_hdlc.py

# 10^6 coverage-guided inputs per parser (atheris); CI runs a few seconds of each (tests/proto/test_fuzz.py)
fuzz: deps
	$(PYTHON) scripts/fuzz.py

# build/docs/man1/larappp.1 and build/docs/completion/larappp.{bash,zsh}, from the argument parser
man:
	$(PIP) install -q --disable-pip-version-check argparse-manpage argcomplete
	$(PYTHON) scripts/gen_docs.py build/docs

# dist/larappp-VERSION.tar.gz with the tests, units, udev rule and examples (MANIFEST.in)
sdist:
	$(PIP) install -q --disable-pip-version-check build
	$(PYTHON) -m build --sdist --outdir dist

clean:
	rm -rf $(STAMP) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
