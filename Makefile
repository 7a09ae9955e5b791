# The automations gateway: nginx module, worker, admin CLI.
#
#   make        build everything into $(BUILD)/
#   make run    install, build, start Redis + nginx + workers with a demo
#   make test   install, build, run the C unit tests and prove -r t/

BUILD     ?= build
NGINX_SRC ?= /usr/share/nginx/src

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Werror
AM_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L $(WARN) \
            -Isrc $(CFLAGS) $(SAN_CFLAGS)
SAN_CFLAGS =

PACKAGES = gcc make perl python3 nginx-core nginx-dev libpcre2-dev \
           zlib1g-dev libssl-dev libhiredis-dev libyajl-dev libuv1-dev \
           libcurl4-openssl-dev redis-server redis-tools valgrind wrk curl \
           openssl

SHARED_SRCS = src/am_scripts.c src/am_crypto.c src/am_jwt.c src/am_jwt_keys.c \
              src/am_json.c \
              src/am_redis_addr.c src/am_name.c src/am_execution.c \
              src/am_header.c src/am_opt.c
SHARED_HDRS = $(wildcard src/am_*.h)
GEN         = $(BUILD)/gen/am_scripts_data.c
MODULE      = $(BUILD)/ngx_http_automations_module.so
CLI         = $(BUILD)/automationsctl
WORKER      = $(BUILD)/automations-worker
SANDBOX     = $(BUILD)/automations-sandbox
SANDBOX_LIB = $(BUILD)/automations-sandbox.so
PY_RUNNER   = $(BUILD)/gen/am_python_runner.c
PY_WARM     = $(BUILD)/gen/am_python_warm.c
UNIT_TESTS  = $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(wildcard t/unit/test_*.c))
MODULE_SRCS = config ngx_http_automations_module.c $(wildcard src/ngx_*.[ch]) \
              $(SHARED_SRCS) $(SHARED_HDRS) $(GEN)

.PHONY: all deps module cli worker unit run test test-unit test-prove test-valgrind \
        bench clean

# the tests that also run with nginx under valgrind in `make test`
VALGRIND_TESTS = $(wildcard t/api.t t/auth.t t/runs.t)

all: module cli worker unit

# Installs the Debian packages that are missing (needs root or sudo).
deps:
	@missing=""; for p in $(PACKAGES); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
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

module: $(MODULE)

$(BUILD)/nginx/objs/Makefile: config
	rm -rf $(BUILD)/nginx && mkdir -p $(BUILD) && cp -r $(NGINX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && AM_GEN_DIR=$(BUILD)/gen bash -c \
	    '. ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	     --with-cc-opt="-g -O2 -fPIC $(SAN_CFLAGS)" \
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

# the first program of every run: libc only, so that it starts fast
$(SANDBOX): src/sandbox/main.c src/worker/sandbox.c src/worker/sandbox.h \
            src/worker/run.h
	$(CC) $(AM_CFLAGS) -o $@ src/sandbox/main.c src/worker/sandbox.c

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

$(WORKER): $(wildcard src/worker/*.c src/worker/*.h) $(SHARED_SRCS) \
           $(SHARED_HDRS) $(GEN) $(PY_RUNNER) $(PY_WARM)
	$(CC) $(AM_CFLAGS) -o $@ $(wildcard src/worker/*.c) $(SHARED_SRCS) \
	    $(GEN) $(PY_RUNNER) $(PY_WARM) -lhiredis -lyajl -lcrypto -luv -lcurl

unit: $(UNIT_TESTS)

# unit tests of worker parts link those parts and their libraries
$(BUILD)/unit/test_run: t/unit/test_run.c t/unit/tap.h src/worker/run.c \
        src/worker/sandbox.c src/worker/warm.c src/worker/run.h \
        src/worker/sandbox.h src/worker/warm.h $(SHARED_SRCS) $(SHARED_HDRS) \
        $(PY_RUNNER) $(PY_WARM) $(SANDBOX) $(SANDBOX_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(AM_CFLAGS) -o $@ t/unit/test_run.c src/worker/run.c \
	    src/worker/sandbox.c src/worker/warm.c src/am_json.c $(PY_RUNNER) \
	    $(PY_WARM) -luv -lyajl -lcrypto

$(BUILD)/unit/test_webhook: t/unit/test_webhook.c t/unit/tap.h \
        src/worker/webhook.c \
        src/worker/webhook.h $(SHARED_SRCS) $(SHARED_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(AM_CFLAGS) -o $@ t/unit/test_webhook.c src/worker/webhook.c \
	    src/am_crypto.c src/am_header.c -luv -lcurl -lcrypto

$(BUILD)/unit/%: t/unit/%.c t/unit/tap.h $(SHARED_SRCS) $(SHARED_HDRS) $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(AM_CFLAGS) -o $@ $< $(SHARED_SRCS) $(GEN) -lhiredis -lyajl -lcrypto

test: deps
	$(MAKE) all
	$(MAKE) test-unit
	$(MAKE) test-prove
	$(MAKE) test-valgrind

test-unit: unit
	prove --exec '' $(UNIT_TESTS)

test-prove: all
	AM_BUILD=$(CURDIR)/$(BUILD) prove -r -I t/lib t/

test-valgrind: all
	AM_BUILD=$(CURDIR)/$(BUILD) AM_VALGRIND=1 prove -I t/lib $(VALGRIND_TESTS)

clean:
	rm -rf $(BUILD)

run: deps
	$(MAKE) all
	AM_BUILD=$(CURDIR)/$(BUILD) sh src/dev/run.sh
