# pglocks: PGXS build. `make && make install` against pg_config; `make installcheck` runs the
# regression and isolation suites against a running server (PGHOST/PGPORT); `make unittest`
# builds and runs the GoogleTest suite of the pure C++ code.
EXTENSION = pglocks
MODULE_big = pglocks
OBJS = src/lock_key.o src/holds_registry.o src/pg_boundary.o src/pg_keys.o src/pg_holds.o \
       src/pg_names.o src/pg_srf.o src/pg_locks_view.o src/pg_functions.o src/pg_tokens.o src/pg_multi.o \
       src/pg_module.o
DATA = sql/pglocks--1.0.sql sql/pglocks--1.0--1.1.sql sql/pglocks--1.1--1.2.sql

REGRESS = keys acquire release scopes with_lock errors core_interop locks_view \
          tokens acquire_all upgrade
REGRESS_OPTS = --inputdir=. --load-extension=pglocks
ISOLATION = exclusive shared_wait try_fail disconnect deadlock core_blocks \
            timeout_wait lock_timeout xact_scope with_lock_iso with_lock_commit locks_view acquire_all
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=pglocks

PG_CONFIG ?= pg_config
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wno-unused-parameter -Wno-register \
              -Wno-missing-field-initializers -fno-omit-frame-pointer -MMD -MP
SHLIB_LINK = -lstdc++

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# clang's default dialect is older than ours; keep the LLVM bitcode build in step.
override BITCODE_CXXFLAGS += -std=c++17 -Wno-register

UNIT_SRCS = test/unit/lock_key_test.cpp test/unit/holds_registry_test.cpp \
            src/lock_key.cpp src/holds_registry.cpp
test/unit/run_unit_tests: $(UNIT_SRCS) src/lock_key.hpp src/holds_registry.hpp
	$(CXX) -std=c++17 -O1 -g -Wall -Wextra -Werror -Isrc $(UNIT_SRCS) -lgtest -lgtest_main -pthread -o $@

.PHONY: unittest
unittest: test/unit/run_unit_tests
	test/unit/run_unit_tests

EXTRA_CLEAN = test/unit/run_unit_tests output_iso src/*.d

# Rebuild objects when a header they include changes.
-include $(wildcard src/*.d)
