# The automations gateway: nginx module, worker, admin CLI.
#
#   make        build everything into $(BUILD)/
#   make run    install, build, start Redis + nginx + workers with a demo
#   make test   install, build, run the C unit tests and prove -r t/
#   make install          PREFIX=/usr/local, DESTDIR for staging
#   make deb              Debian packages into $(BUILD)/deb/

BUILD     ?= build
NGINX_SRC ?= /usr/share/nginx/src

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Werror
# LDFLAGS too: each program and test here compiles and links in one command
AM_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L $(WARN) \
            -Isrc $(CPPFLAGS) $(CFLAGS) $(SAN_CFLAGS) $(LDFLAGS)
SAN_CFLAGS =
# the module's compiler and linker flags (debian/rules passes Debian's)
NGX_CC_OPT ?= -g -O2
NGX_LD_OPT ?=

VERSION := $(shell sed -n '/define AM_VERSION /s/[^"]*"\(.*\)"/\1/p' \
             src/am_version.h)

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc
NGX_MODDIR  ?= $(PREFIX)/lib/nginx/modules
NGX_AVAILDIR ?= $(PREFIX)/share/nginx/modules-available
UNITDIR     ?= $(PREFIX)/lib/systemd/system

PACKAGES = gcc make perl python3 nginx-core nginx-dev libpcre2-dev \
           zlib1g-dev libssl-dev libhiredis-dev libyajl-dev libuv1-dev \
           libcurl4-openssl-dev redis-server redis-tools valgrind wrk curl \
           openssl debhelper dpkg-dev fakeroot lintian systemd prometheus \
           chromium
# the webhook tests verify signatures with the standardwebhooks npm library;
# a Node.js that brings its own npm (nodesource's) is taken as it is
NODE_PACKAGES = nodejs npm

SHARED_SRCS = src/am_scripts.c src/am_crypto.c src/am_jwt.c src/am_jwt_keys.c \
              src/am_json.c \
              src/am_redis_addr.c src/am_name.c src/am_execution.c \
              src/am_header.c src/am_opt.c src/am_url.c
SHARED_HDRS = $(wildcard src/am_*.h)
GEN         = $(BUILD)/gen/am_scripts_data.c
DASHBOARD   = $(BUILD)/gen/ngx_http_automations_dashboard_page.c
MODULE      = $(BUILD)/ngx_http_automations_module.so
CLI         = $(BUILD)/automationsctl
WORKER      = $(BUILD)/automations-worker
SANDBOX     = $(BUILD)/automations-sandbox
SANDBOX_LIB = $(BUILD)/automations-sandbox.so
PY_RUNNER   = $(BUILD)/gen/am_python_runner.c
PY_WARM     = $(BUILD)/gen/am_python_warm.c
UNIT_TESTS  = $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(wildcard t/unit/test_*.c))
MODULE_SRCS = config ngx_http_automations_module.c $(wildcard src/ngx_*.[ch]) \
              $(SHARED_SRCS) $(SHARED_HDRS) $(GEN) src/am_schema.c $(DASHBOARD)

.PHONY: all deps module cli worker unit run test test-unit test-prove test-valgrind \
        test-asan \
        bench clean install deb

# the tests that also run with nginx under valgrind in `make test`
VALGRIND_TESTS = $(wildcard t/api.t t/auth.t t/runs.t t/sync.t t/credential-cache.t)
# prove, ending a failed run with what failed (t/lib/prove-failures)
PROVE = t/lib/prove-failures prove

# the tests that also run with the worker built with AddressSanitizer,
# LeakSanitizer and UBSan (AM_WORKER) in `make test`
ASAN_DIR    = $(BUILD)/asan
ASAN_WORKER = $(ASAN_DIR)/automations-worker
ASAN_TESTS  = $(wildcard t/early-sandbox.t t/executions.t t/runs.t t/sync.t \
                         t/runs-faults.t)

all: module cli worker unit

# Installs the Debian packages that are missing (needs root or sudo).
deps:
	@missing=""; for p in $(PACKAGES); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing $(NODE_PACKAGES)"; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	    $$sudo apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
	        --no-install-recommends $$missing >/dev/null; \
	fi

$(GEN): redis/embed.pl $(wildcard redis/*.lua)
	@mkdir -p $(dir $@)
	perl redis/embed.pl redis $@

# the dashboard page as a C string, with the CSP that allows its inline parts
$(DASHBOARD): src/dashboard/embed.pl src/dashboard/index.html
	@mkdir -p $(dir $@)
	perl src/dashboard/embed.pl src/dashboard/index.html $@

module: $(MODULE)

$(BUILD)/nginx/objs/Makefile: config
	rm -rf $(BUILD)/nginx && mkdir -p $(BUILD) && cp -r $(NGINX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && AM_GEN_DIR=$(BUILD)/gen bash -c \
	    '. ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	     --with-cc-opt="$(NGX_CC_OPT) -fPIC $(SAN_CFLAGS)" \
	     --with-ld-opt="$(NGX_LD_OPT)" \
	     --add-dynamic-module=$(CURDIR)' >/dev/null

$(MODULE): $(BUILD)/nginx/objs/Makefile $(MODULE_SRCS)
	$(MAKE) -s -C $(BUILD)/nginx -f objs/Makefile modules
	cp $(BUILD)/nginx/objs/ngx_http_automations_module.so $@.tmp
	mv $@.tmp $@

cli: $(CLI)

$(CLI): $(wildcard src/cli/*.c src/cli/*.h) $(SHARED_SRCS) $(SHARED_HDRS) $(GEN)
	$(CC) $(AM_CFLAGS) -o $@ $(wildcard src/cli/*.c) $(SHARED_SRCS) $(GEN) \
	    -lhiredis -lyajl -lcrypto

worker: $(WORKER) $(SANDBOX) $(SANDBOX_LIB)

# the worker's sources, what it is rebuilt for, and its libraries; the same
# for the sanitized build below
WORKER_SRCS = $(wildcard src/worker/*.c) $(SHARED_SRCS) src/am_schema.c \
              $(GEN) $(PY_RUNNER) $(PY_WARM)
WORKER_DEPS = $(WORKER_SRCS) $(wildcard src/worker/*.h) $(SHARED_HDRS)
WORKER_LIBS = -lhiredis -lyajl -lcrypto -luv -lcurl -lpcre2-8 -lm

# The worker, sanitized, with the ordinary sandbox and its library next to
# it: what a run executes first stays as it ships (static, and small enough
# for a run's memory limit), the worker's own code is checked.
$(ASAN_WORKER): $(WORKER_DEPS) $(SANDBOX) $(SANDBOX_LIB)
	@mkdir -p $(ASAN_DIR)
	$(CC) $(AM_CFLAGS) -O1 -fno-omit-frame-pointer \
	    -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	    -o $@ $(WORKER_SRCS) $(WORKER_LIBS)
	cp $(SANDBOX) $(SANDBOX_LIB) $(ASAN_DIR)/

# the first program of every run (and the init and supervisor of warm
# confined ones): libc only, linked statically, so that it starts fast (no
# dynamic loader: a fifth of the cost of an exec here)
$(SANDBOX): src/sandbox/main.c src/worker/sandbox.c src/worker/sandbox.h \
            src/worker/run.h src/am_version.h
	$(CC) $(AM_CFLAGS) -static -o $@ src/sandbox/main.c src/worker/sandbox.c

# the same confinement for the warm python parent's children, which call
# am_sandbox_enter through ctypes instead of executing the binary
$(SANDBOX_LIB): src/worker/sandbox.c src/worker/sandbox.h src/worker/run.h
	$(CC) $(AM_CFLAGS) -fPIC -shared -o $@ src/worker/sandbox.c

# src/worker/python_NAME.py as the C string am_python_NAME: the runner,
# written into each python run's folder, and the warm parent
$(BUILD)/gen/am_python_%.c: src/worker/python_%.py
	@mkdir -p $(dir $@)
	perl -e 'local $$/; $$_ = <>; s/([\\"?])/\\$$1/g; s/\t/\\t/g;' \
	     -e 's/\n/\\n"\n    "/g; print "/* generated from $<: do not edit */\n\n"' \
	     -e '. "const char am_python_$*[] =\n    \"$$_\";\n"' $< >$@.tmp
	mv $@.tmp $@

$(WORKER): $(WORKER_DEPS)
	$(CC) $(AM_CFLAGS) -o $@ $(WORKER_SRCS) $(WORKER_LIBS)

unit: $(UNIT_TESTS)

# unit tests of worker parts link those parts and their libraries
$(BUILD)/unit/test_run: t/unit/test_run.c t/unit/tap.h src/worker/run.c \
        src/worker/sandbox.c src/worker/warm.c src/worker/run.h \
        src/worker/sandbox.h src/worker/warm.h $(SHARED_SRCS) $(SHARED_HDRS) \
        $(PY_RUNNER) $(PY_WARM) $(SANDBOX) $(SANDBOX_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(AM_CFLAGS) -o $@ t/unit/test_run.c src/worker/run.c \
	    src/worker/sandbox.c src/worker/warm.c src/am_json.c src/am_name.c \
	    $(PY_RUNNER) $(PY_WARM) -luv -lyajl -lcrypto

$(BUILD)/unit/test_webhook: t/unit/test_webhook.c t/unit/tap.h \
        src/worker/webhook.c \
        src/worker/webhook.h $(SHARED_SRCS) $(SHARED_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(AM_CFLAGS) -o $@ t/unit/test_webhook.c src/worker/webhook.c \
	    src/am_crypto.c src/am_header.c -luv -lcurl -lcrypto

$(BUILD)/unit/test_rds: t/unit/test_rds.c t/unit/tap.h src/worker/rds.c \
        src/worker/rds.h src/worker/log.c src/worker/worker.h \
        $(SHARED_SRCS) $(SHARED_HDRS) $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(AM_CFLAGS) -o $@ t/unit/test_rds.c src/worker/rds.c \
	    src/worker/log.c $(SHARED_SRCS) $(GEN) -lhiredis -luv -lyajl -lcrypto

# the JSON Schema validator and its conformance run over the official
# test suite (../shared/testdata/json-schema-test-suite, or $AM_SCHEMA_SUITE)
$(BUILD)/unit/test_schema: t/unit/test_schema.c t/unit/tap.h src/am_schema.c \
        src/am_schema.h src/am_json.c src/am_json.h
	@mkdir -p $(dir $@)
	$(CC) $(AM_CFLAGS) -o $@ t/unit/test_schema.c src/am_schema.c \
	    src/am_json.c -pthread -lyajl -lpcre2-8 -lm

$(BUILD)/unit/%: t/unit/%.c t/unit/tap.h $(SHARED_SRCS) $(SHARED_HDRS) $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(AM_CFLAGS) -o $@ $< $(SHARED_SRCS) $(GEN) -lhiredis -lyajl -lcrypto

test: deps
	$(MAKE) all
	$(MAKE) test-unit
	$(MAKE) test-fuzz
	$(MAKE) test-prove
	$(MAKE) test-asan
	$(MAKE) test-valgrind

test-unit: unit
	$(PROVE) --exec '' $(UNIT_TESTS)

test-prove: all
	AM_BUILD=$(CURDIR)/$(BUILD) $(PROVE) -r -I t/lib t/

test-valgrind: all
	AM_BUILD=$(CURDIR)/$(BUILD) AM_VALGRIND=1 $(PROVE) -I t/lib $(VALGRIND_TESTS)

test-asan: all $(ASAN_WORKER)
	AM_BUILD=$(CURDIR)/$(BUILD) AM_WORKER=$(CURDIR)/$(ASAN_WORKER) \
	    $(PROVE) -I t/lib $(ASAN_TESTS)

clean:
	rm -rf $(BUILD)

# PREFIX=/usr gives the layout of the Debian packages. The environment file
# holds the Redis password: an existing one is kept as it is.
install: module cli worker
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(NGX_MODDIR) \
	    $(DESTDIR)$(NGX_AVAILDIR) $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/default
	install -m 755 $(WORKER) $(SANDBOX) $(CLI) $(DESTDIR)$(BINDIR)/
	install -d $(DESTDIR)$(PREFIX)/lib/automations
	install -m 644 $(SANDBOX_LIB) $(DESTDIR)$(PREFIX)/lib/automations/
	install -m 644 $(MODULE) $(DESTDIR)$(NGX_MODDIR)/
	echo 'load_module $(NGX_MODDIR)/ngx_http_automations_module.so;' \
	    >$(DESTDIR)$(NGX_AVAILDIR)/mod-http-automations.conf
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    'src/worker/automations-worker@.service.in' \
	    >'$(DESTDIR)$(UNITDIR)/automations-worker@.service'
	f=$(DESTDIR)$(SYSCONFDIR)/default/automations-worker; [ -e $$f ] || { \
	    sed 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	        src/worker/automations-worker.default >$$f.tmp && \
	    chmod 600 $$f.tmp && mv $$f.tmp $$f; }

# Built from a copy of the sources in $(BUILD)/deb/src: dpkg-buildpackage
# writes the packages next to it, and the host's build/ stays out of them.
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEBS      = $(BUILD)/deb/automations-worker_$(VERSION)_$(DEB_ARCH).deb \
            $(BUILD)/deb/libnginx-mod-http-automations_$(VERSION)_$(DEB_ARCH).deb
LINTIAN  ?= lintian --fail-on error
DEB_SRCS  = Makefile config ngx_http_automations_module.c README.md \
            $(shell find src redis debian -type f)

deb: $(DEBS)

$(DEBS) &: $(DEB_SRCS)
	@v=$$(dpkg-parsechangelog -S Version) && [ "$$v" = $(VERSION) ] || { \
	    echo "debian/changelog is at $$v, src/am_version.h at $(VERSION)" >&2; \
	    exit 1; }
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/src
	tar -cf - Makefile config ngx_http_automations_module.c README.md \
	    src redis debian | tar -xf - -C $(BUILD)/deb/src
	cd $(BUILD)/deb/src && dpkg-buildpackage -b -us -uc >../build.log 2>&1 \
	    || { tail -40 ../build.log >&2; exit 1; }
	$(LINTIAN) $(DEBS)

run: deps
	$(MAKE) all
	AM_BUILD=$(CURDIR)/$(BUILD) sh src/dev/run.sh

# Fuzz targets, fuzz/fuzz_T.c: `make fuzz` runs each under libFuzzer with
# ASan and UBSan (clang) for FUZZ_SECONDS; new inputs go to build/fuzz/,
# crash inputs to fuzz/crashes/T/ (commit them). `make test-fuzz-replay`, part
# of `make test`, feeds fuzz/corpus/T and fuzz/crashes/T to each target's
# function with the ordinary compiler (fuzz/replay.c): no clang needed.
FUZZ_TARGETS = $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_FLAGS    = -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -std=c11 -D_DEFAULT_SOURCE \
                -D_POSIX_C_SOURCE=200809L -Isrc -Ifuzz
FUZZ_REPLAY   = $(patsubst %,$(BUILD)/fuzz/replay_%,$(FUZZ_TARGETS))
# the bounded run of every target in `make test` (and so in CI); 0 skips it
FUZZ_TEST_SECONDS ?= 10

PACKAGES += clang libclang-rt-14-dev

.PHONY: fuzz test-fuzz-replay test-fuzz

$(BUILD)/fuzz/replay_%: fuzz/fuzz_%.c fuzz/replay.c fuzz/fuzz.h \
        $(SHARED_SRCS) $(SHARED_HDRS) $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(AM_CFLAGS) -Ifuzz -DAM_REPLAY_TARGET='"$*"' -o $@ $< \
	    fuzz/replay.c $(SHARED_SRCS) $(GEN) -lhiredis -lyajl -lcrypto

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(SHARED_SRCS) \
        $(SHARED_HDRS) $(GEN)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(SHARED_SRCS) $(GEN) \
	    -lhiredis -lyajl -lcrypto

test-fuzz-replay: $(FUZZ_REPLAY)
	$(PROVE) --exec '' $(FUZZ_REPLAY)

test-fuzz: test-fuzz-replay
	@[ "$(FUZZ_TEST_SECONDS)" = 0 ] || $(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)

fuzz: $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(BUILD)/fuzz/corpus/$$t fuzz/crashes/$$t; \
	    echo "fuzz $$t for $(FUZZ_SECONDS) s"; \
	    $(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -print_final_stats=1 -artifact_prefix=fuzz/crashes/$$t/ \
	        $(BUILD)/fuzz/corpus/$$t fuzz/corpus/$$t || exit 1; \
	done
