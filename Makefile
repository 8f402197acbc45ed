# pglocks: PGXS build. `make && make install` against pg_config; `make installcheck` runs the
# regression and isolation suites against a running server (PGHOST/PGPORT); `make unittest`
# builds and runs the GoogleTest suite of the pure C++ code.
# The checkout this Makefile lives in, taken before any include (make -f path/Makefile, or a
# makefile that includes this one, both find it).
PGLOCKS_ROOT := $(dir $(lastword $(MAKEFILE_LIST)))
EXTENSION = pglocks
MODULE_big = pglocks
OBJS = src/lock_key.o src/sha256.o src/holds_registry.o src/pg_boundary.o src/pg_keys.o src/pg_holds.o \
       src/pg_names.o src/pg_compat.o src/pg_srf.o src/pg_locks_view.o src/pg_functions.o src/pg_tokens.o src/pg_multi.o src/pg_detached.o src/pg_guards.o src/pg_slots.o src/pg_stats.o \
       src/pg_module.o
DATA = sql/pglocks--1.0.sql sql/pglocks--1.0--1.1.sql sql/pglocks--1.1--1.2.sql

REGRESS = keys acquire release scopes with_lock errors core_interop locks_view \
          tokens acquire_all memory_safety upgrade settings detached with_lock_params guards slots stats
REGRESS_OPTS = --inputdir=. --load-extension=pglocks
ISOLATION = exclusive shared_wait try_fail disconnect deadlock core_blocks \
            timeout_wait lock_timeout xact_scope with_lock_iso with_lock_commit locks_view acquire_all detached \
            slots_full slots_timeout stats_waits stats_multi stats_slots stats_holds token_alter
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=pglocks

PG_CONFIG ?= pg_config
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wno-unused-parameter -Wno-register \
              -Wno-missing-field-initializers -fno-omit-frame-pointer -MMD -MP
# SHA-256 of text keys comes from OpenSSL's libcrypto (1.1.0 or later; libssl-dev to build),
# linked directly: its SHA256_* functions cost a fraction of pg_cryptohash's per-call lookup
# of the algorithm, and a server built without OpenSSL still gets them. Its flags come from
# pkg-config where it knows libcrypto (a libcrypto outside the default paths), else -lcrypto.
# Its include flags go after the server's (below, after PGXS), so that they cannot shadow
# the server's headers. A libcrypto outside the loader's default paths needs those paths at
# run time too (ld.so.conf or the server's environment): no rpath is set.
CRYPTO_CFLAGS := $(shell pkg-config --cflags libcrypto 2>/dev/null)
CRYPTO_LIBS := $(shell pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto)
SHLIB_LINK = -lstdc++ $(CRYPTO_LIBS)
PGLOCKS_VERSION := $(shell sed -n "s/^default_version = '\\(.*\\)'/\\1/p" $(PGLOCKS_ROOT)pglocks.control)
PG_CPPFLAGS += -DPGLOCKS_VERSION='"$(PGLOCKS_VERSION)"'
# The version matrix (scripts/matrix.sh) builds with PGLOCKS_WERROR=1: our code compiles
# without a warning on every major.
ifdef PGLOCKS_WERROR
PG_CXXFLAGS += -Werror
endif

# PGLOCKS_DEBUG=1 builds the boundary's debug checks (pg_boundary.cpp) into a server that was
# not built with assertions; the valgrind suite builds with it.
ifneq ($(PGLOCKS_DEBUG),)
PG_CPPFLAGS += -DPGLOCKS_DEBUG
endif

# pg_buildext passes the packager's flags (dpkg-buildflags' CFLAGS) as COPT, which PGXS gives
# to the C compiler and the linker only; the C++ objects take them too.
ifdef COPT
PG_CXXFLAGS += $(COPT)
endif

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
override CPPFLAGS += $(CRYPTO_CFLAGS)

# Servers built with g++ 13 or later pass a flag that g++ 12 rejects for C++; it only
# concerns floating-point code, which pglocks has none of.
override CXXFLAGS := $(filter-out -fexcess-precision=standard,$(CXXFLAGS))
# Likewise a warning option of newer gcc that the link step passes through CFLAGS.
override CFLAGS := $(filter-out -Wmissing-variable-declarations,$(CFLAGS))
# Objects are rebuilt when the flags change (PGLOCKS_DEBUG on or off).
src/build_flags: FORCE
	@echo '$(PG_CPPFLAGS)' | cmp -s - $@ || echo '$(PG_CPPFLAGS)' > $@
$(OBJS): src/build_flags
.PHONY: FORCE
FORCE:

# clang's default dialect is older than ours; keep the LLVM bitcode build in step.
override BITCODE_CXXFLAGS += -std=c++17 -Wno-register

UNIT_SRCS = test/unit/lock_key_test.cpp test/unit/holds_registry_test.cpp test/unit/sha256_test.cpp \
            src/lock_key.cpp src/holds_registry.cpp src/sha256.cpp
test/unit/run_unit_tests: $(UNIT_SRCS) src/lock_key.hpp src/holds_registry.hpp src/sha256.hpp
	$(CXX) -std=c++17 -O1 -g -Wall -Wextra -Werror -Isrc $(CRYPTO_CFLAGS) $(UNIT_SRCS) -lgtest -lgtest_main $(CRYPTO_LIBS) -pthread -o $@

# The SHA-256 tests again with the EVP branch of sha256.cpp, the one a libcrypto built
# without the deprecated SHA256_* functions gets: OPENSSL_NO_DEPRECATED hides them from the
# headers as such a build does, and sha256.cpp chooses its branch by what the headers say.
EVP_UNIT_SRCS = test/unit/sha256_test.cpp src/lock_key.cpp src/sha256.cpp
test/unit/run_unit_tests_evp: $(EVP_UNIT_SRCS) src/lock_key.hpp src/sha256.hpp
	$(CXX) -std=c++17 -O1 -g -Wall -Wextra -Werror -DOPENSSL_NO_DEPRECATED -DPGLOCKS_EXPECT_SHA256_EVP -Isrc $(CRYPTO_CFLAGS) $(EVP_UNIT_SRCS) -lgtest -lgtest_main $(CRYPTO_LIBS) -pthread -o $@

.PHONY: unittest check-pure-headers
unittest: check-pure-headers test/unit/run_unit_tests test/unit/run_unit_tests_evp
	test/unit/run_unit_tests
	test/unit/run_unit_tests_evp

# The pure C++ headers compile on their own and refuse to compile after postgres.h.
PURE_HEADERS = lock_key.hpp holds_registry.hpp sha256.hpp
check-pure-headers:
	@printf '#include "postgres.h"\n' | $(CXX) -std=c++17 -fsyntax-only -Wno-register -I$(includedir_server) -x c++ -
	@for h in $(PURE_HEADERS); do \
	    printf '#include "%s"\n' $$h | $(CXX) -std=c++17 -fsyntax-only -Isrc -x c++ - || exit 1; \
	    if ! printf '#include "postgres.h"\n#include "%s"\n' $$h | \
	        $(CXX) -std=c++17 -fsyntax-only -Wno-register -Isrc -I$(includedir_server) -x c++ - 2>&1 | \
	        grep -q "is pure C++"; then \
	        echo "$$h compiles after postgres.h: its boundary check is missing" >&2; exit 1; \
	    fi; \
	    echo "ok: $$h is refused after postgres.h"; \
	done

# The release archives, both what git holds at DIST_REF (HEAD by default), in DIST_DIR
# (relative to the directory make runs in; the repository is the Makefile's, so
# `make -f path/to/Makefile dist` archives that checkout from anywhere):
#   pglocks-VERSION.zip       for PGXN, unpacking into pglocks-VERSION/, where VERSION is
#                             META.json's (default_version as PGXN's semantic version: 1.2
#                             is 1.2.0; the packaging suite checks it)
#   pglocks_UPSTREAM.orig.tar.gz
#                             the upstream tarball of the Debian source package, without
#                             debian/ (which the package's own debian.tar.xz carries), named
#                             for the upstream part of debian/changelog's version (1.2 of
#                             1.2-1), which is what dpkg-source looks for next to the tree
DIST_REF ?= HEAD
DIST_DIR ?= dist
DIST_ROOT := $(PGLOCKS_ROOT)
DIST_VERSION = $(shell sed -n 's/^   "version": "\([^"]*\)".*/\1/p' $(DIST_ROOT)META.json)
.PHONY: dist
dist:
	@test -n "$(DIST_VERSION)" || { echo "no version in META.json" >&2; exit 1; }
	@mkdir -p $(DIST_DIR)
	git -C $(DIST_ROOT) archive --format=zip --prefix=$(EXTENSION)-$(DIST_VERSION)/ \
	    -o $(abspath $(DIST_DIR))/$(EXTENSION)-$(DIST_VERSION).zip $(DIST_REF)
	@# debian/changelog's first line: pglocks (EPOCH:UPSTREAM-REVISION) ...
	@upstream=$$(sed -n '1{s/^[^(]*(//;s/).*//;s/^[0-9]*://;s/-[^-]*$$//;p;}' $(DIST_ROOT)debian/changelog); \
	test -n "$$upstream" || { echo "no upstream version in debian/changelog" >&2; exit 1; }; \
	echo "git archive $(DIST_REF) without debian/ > $(DIST_DIR)/$(EXTENSION)_$$upstream.orig.tar.gz"; \
	git -C $(DIST_ROOT) archive --format=tar --prefix=$(EXTENSION)-$$upstream/ $(DIST_REF) -- . ':(exclude)debian' | \
	    gzip -n -9 >$(DIST_DIR)/$(EXTENSION)_$$upstream.orig.tar.gz.tmp && \
	mv $(DIST_DIR)/$(EXTENSION)_$$upstream.orig.tar.gz.tmp $(DIST_DIR)/$(EXTENSION)_$$upstream.orig.tar.gz

EXTRA_CLEAN = test/unit/run_unit_tests test/unit/run_unit_tests_evp output_iso src/*.d src/build_flags

# Rebuild objects when a header they include changes.
-include $(wildcard src/*.d)
