# cowvfs - an SQLite VFS on a copy-on-write extent store.
#
#   make          build/cowvfs.so, build/libcowvfs.a, build/cowctl, build/slt
#                 (only builds; a missing library stops it with a pointer to make deps)
#   make deps     the Debian packages the build and tests need: installed when run
#                 as root, else the one command to run is printed (run by demo, test)
#   make demo     the main job, shown step by step (see README.md)
#   make test     every test (unit tests under ASan+UBSan, tsan, race-proof, tools,
#                 the crash simulator's 10,000 states, the project's sqllogictest
#                 files and a slice of the development corpus when it is there,
#                 each fuzzer for 15 s, the corruption sweep's sample)
#   make mproc    several processes on one container (also in make unit)
#   make fuzz     the libFuzzer harnesses, 10 minutes each (FUZZ_TIME)
#   make sweep    the corruption sweep (sweep-full: every target byte)
#   make crash    the crash simulator, 40,000 crash states (crash-ci: 10,000, run
#                 by make test; crash-long: 1,000,000)
#   make tsan     the concurrency tests under ThreadSanitizer
#   make race-proof  the race tests against builds with each invariant broken
#   make slt      the project's sqllogictest files and the whole development
#                 corpus (SLT_CORPUS, when there) through cow and unix
#   make bench    benchmarks, cow against unix in one run
#   make install  PREFIX=/usr/local DESTDIR=
#
# Overridable: CC, CFLAGS, PREFIX, DESTDIR, SANITIZE (e.g. address,undefined).

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
# sqllogictest: the project's own files (sqllogictest/*.test) always run; the
# development corpus, an optional extra, in addition when it is there: at
# ../shared/sqllogictest beside the project, or wherever SLT_CORPUS says.
SLT_OWN    := sqllogictest
SLT_CORPUS ?= $(wildcard ../shared/sqllogictest)

BUILD   := build
OPT     ?= -O2 -g
CFLAGS  ?= $(OPT)
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CPPFLAGS_ALL := -Iinclude -Istore -Ivfs -D_GNU_SOURCE
BASEFLAGS := -std=c11 -pthread -fPIC -MMD -MP $(WARN) $(CPPFLAGS_ALL)

PKGS      := sqlite3 libcrypto
SQLITE_CFLAGS := $(shell pkg-config --cflags sqlite3 2>/dev/null)
SQLITE_LIBS   := $(shell pkg-config --libs sqlite3 2>/dev/null || echo -lsqlite3)
CRYPTO_LIBS   := $(shell pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto)
CHECK_CFLAGS  := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS    := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt)

ifneq ($(SANITIZE),)
  SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

# The RADOS parts (store/bdev_rados.c, vfs/vfs_rados.c, test/check_rados.c)
# build only into build/cowvfs_rados.so and build/check_rados, and only when
# librados is there (README "On Ceph RADOS"): the rest never links it.
RADOS_SRC := store/bdev_rados.c vfs/vfs_rados.c
HAVE_RADOS := $(shell { pkg-config --exists rados 2>/dev/null || \
                        test -f /usr/include/rados/librados.h; } && echo 1)
RADOS_LIBS := $(shell pkg-config --libs rados 2>/dev/null || echo -lrados)
STORE_SRC := $(filter-out $(RADOS_SRC),$(wildcard store/*.c))
VFS_SRC   := $(filter-out $(RADOS_SRC),$(wildcard vfs/*.c))
LIB_SRC   := $(STORE_SRC) $(VFS_SRC)
# cowctl fsck and dump (tools/fsck.h; tools/fsck/), linked into cowctl and the tests
FSCK_SRC  := $(wildcard tools/fsck/*.c)
# test/crash/ is a program of its own (build/crash), not a Check suite.
CRASH_SRC := $(wildcard test/crash/*.c)
TEST_SRC  := $(filter-out test/check_rados.c test/check_rados_vfs.c test/check_rados_store.c,\
               $(wildcard test/*.c))
# the benchmark (build/bench), one program
BENCH_SRC := $(wildcard bench/*.c)

# Normal build
OBJDIR    := $(BUILD)/obj
LIB_OBJ   := $(LIB_SRC:%.c=$(OBJDIR)/%.o)
# Sanitized build for tests (ASan + UBSan)
# The loadable extension: vfs/ built against sqlite3ext.h (-DCOWVFS_LOADABLE)
EOBJDIR   := $(BUILD)/ext
EXT_OBJ   := $(STORE_SRC:%.c=$(OBJDIR)/%.o) $(VFS_SRC:%.c=$(EOBJDIR)/%.o)
TOBJDIR   := $(BUILD)/asan
TSAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
TLIB_OBJ  := $(LIB_SRC:%.c=$(TOBJDIR)/%.o)
TTEST_OBJ := $(TEST_SRC:%.c=$(TOBJDIR)/%.o)
# ThreadSanitizer build of the same test runner, for make tsan
THOBJDIR  := $(BUILD)/tsan
THREADSAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer

ALL := $(BUILD)/cowvfs.so $(BUILD)/libcowvfs.a $(BUILD)/cowctl $(BUILD)/slt
ifeq ($(HAVE_RADOS),1)
  ALL += $(BUILD)/cowvfs_rados.so
endif

.PHONY: all deps need-deps test unit tsan race-proof demo slt slt-ci bench bench-speedtest1 install uninstall \
        clean check-tools mproc test-rados deps-rados bench-rados
all: $(ALL)
ifneq ($(HAVE_RADOS),1)
	@echo "make: librados is missing: the RADOS parts (cowvfs_rados.so, make test-rados) are skipped; get them with 'make deps-rados' (apt-get install $(RADOS_DEB_PKGS))"
endif

# ---- dependencies: make deps installs them (root) or names the command ----
# A plain make never runs the package manager: need-deps (before each object
# of the library and tools) only asks pkg-config for the libraries, and stops
# the build with a pointer to make deps when one is missing.
need-deps:
	@command -v pkg-config >/dev/null || { echo "pkg-config is missing: run 'make deps'"; exit 1; }; \
	for p in $(PKGS); do \
	  pkg-config --exists $$p || { echo "$$p is missing (pkg-config $$p): run 'make deps'"; exit 1; }; \
	done

DEB_PKGS := gcc make pkg-config libsqlite3-dev sqlite3 libssl-dev check libsubunit-dev python3 \
            clang libclang-rt-14-dev
# The RADOS parts' packages (make deps-rados; .ci/run installs them too):
# librados for the build, a monitor and an OSD for the test cluster,
# libcephsqlite for make bench-rados.
RADOS_DEB_PKGS := ceph-mon ceph-osd ceph-common librados-dev libsqlite3-mod-ceph
deps-rados:
	$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_PKGS) $(RADOS_DEB_PKGS)"
deps:
	@command -v dpkg-query >/dev/null || \
	  { echo "make deps knows Debian only; install the equivalents of: $(DEB_PKGS)"; exit 1; }; \
	missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || \
	      { echo "apt-get install failed:$$missing"; exit 1; }; \
	  else \
	    echo "missing Debian packages; run:"; echo "  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(OBJDIR)/%.o: %.c | need-deps
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(SANFLAGS) $(SQLITE_CFLAGS) $(CFLAGS) -c $< -o $@

$(EOBJDIR)/%.o: %.c | need-deps
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(SANFLAGS) -DCOWVFS_LOADABLE $(SQLITE_CFLAGS) $(CFLAGS) -c $< -o $@

$(TOBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(TSAN_FLAGS) -DCOW_DEBUG $(EXTRA_DEFS) $(SQLITE_CFLAGS) $(CHECK_CFLAGS) -O1 -g -c $< -o $@

$(THOBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(THREADSAN_FLAGS) -DCOW_DEBUG $(SQLITE_CFLAGS) $(CHECK_CFLAGS) -O1 -g -c $< -o $@

$(BUILD)/libcowvfs.a: $(LIB_OBJ)
	@mkdir -p $(BUILD)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/cowvfs.so: $(EXT_OBJ)
	$(CC) -shared $(SANFLAGS) $(CFLAGS) -pthread -o $@ $^

# cowvfs.so with the cow-rados VFS besides (vfs/vfs_rados.c), linked with librados.
$(BUILD)/cowvfs_rados.so: $(EXT_OBJ) $(OBJDIR)/store/bdev_rados.o $(EOBJDIR)/vfs/vfs_rados.o
	$(CC) -shared $(SANFLAGS) $(CFLAGS) -pthread -o $@ $^ $(RADOS_LIBS)

# cowctl: tools/cowctl.c (main and the commands that look into a container)
# and its modules (tools/ctl_*.c, tools/progress.c), with tools/fsck/.
COWCTL_SRC := tools/cowctl.c tools/ctl_cli.c tools/ctl_copy.c tools/ctl_snap.c tools/progress.c
# cowctl --rados: with librados, cowctl holds the RADOS device and VFS too
# (tools/ctl_rados.c, -DCOWCTL_RADOS in cowctl's objects in build/obj/tools).
ifeq ($(HAVE_RADOS),1)
  COWCTL_RADOS_OBJ := $(OBJDIR)/tools/ctl_rados.o $(OBJDIR)/store/bdev_rados.o $(OBJDIR)/vfs/vfs_rados.o
  COWCTL_RADOS_LIBS := $(RADOS_LIBS)
$(COWCTL_SRC:%.c=$(OBJDIR)/%.o): CFLAGS += -DCOWCTL_RADOS
endif
$(BUILD)/cowctl: $(COWCTL_SRC:%.c=$(OBJDIR)/%.o) $(FSCK_SRC:%.c=$(OBJDIR)/%.o) \
		$(COWCTL_RADOS_OBJ) $(BUILD)/libcowvfs.a
	$(CC) $(SANFLAGS) $(CFLAGS) -pthread -o $@ $(filter %.o,$^) $(BUILD)/libcowvfs.a $(SQLITE_LIBS) \
	  $(COWCTL_RADOS_LIBS)

# the sqllogictest runner (sqllogictest/slt.c and its parts, slt_*.c)
SLT_SRC := $(wildcard sqllogictest/*.c)
$(BUILD)/slt: $(SLT_SRC:%.c=$(OBJDIR)/%.o) $(BUILD)/libcowvfs.a
	$(CC) $(SANFLAGS) $(CFLAGS) -pthread -o $@ $(filter %.o,$^) $(BUILD)/libcowvfs.a \
	  $(SQLITE_LIBS) $(CRYPTO_LIBS)

$(BUILD)/bench: $(BENCH_SRC:%.c=$(OBJDIR)/%.o) $(BUILD)/libcowvfs.a
	$(CC) $(SANFLAGS) $(CFLAGS) -pthread -o $@ $(filter %.o,$^) $(BUILD)/libcowvfs.a $(SQLITE_LIBS)

# Unit tests: Check, ASan + UBSan.  tools/fsck/ is linked in so tests can fsck.
$(BUILD)/check_all: $(TTEST_OBJ) $(TLIB_OBJ) $(FSCK_SRC:%.c=$(TOBJDIR)/%.o)
	$(CC) $(TSAN_FLAGS) -pthread -o $@ $^ $(SQLITE_LIBS) $(CHECK_LIBS)

# The same runner under ThreadSanitizer: check_all's objects, built in build/tsan.
$(THOBJDIR)/check_all: $(patsubst $(TOBJDIR)/%,$(THOBJDIR)/%,$(TTEST_OBJ) $(TLIB_OBJ) $(FSCK_SRC:%.c=$(TOBJDIR)/%.o))
	$(CC) $(THREADSAN_FLAGS) -pthread -o $@ $^ $(SQLITE_LIBS) $(CHECK_LIBS)

# The asan build of cowctl/slt, used by tests so the tools run sanitized too.
$(BUILD)/asan-cowctl: $(COWCTL_SRC:%.c=$(TOBJDIR)/%.o) $(FSCK_SRC:%.c=$(TOBJDIR)/%.o) $(TLIB_OBJ)
	$(CC) $(TSAN_FLAGS) -pthread -o $@ $^ $(SQLITE_LIBS)

# The RADOS tests (test/check_rados.c): their own runner, ASan + UBSan,
# against a cluster of tools/ceph-local.sh that test-rados starts and
# always stops.  CK_RUN_CASE=name for one case.  The model test
# (test/model_run.c, test/model.c) runs there through cow-rados too, with
# fsck as cowctl --rados runs it (tools/ctl_rados.c), and so do the VFS
# suites' and the store suites' tests that hold on any device
# (test/check_rados_vfs.c, test/check_rados_store.c).
RADOS_VFS_TESTS := check_rados_vfs vfsutil check_vfs_io check_vfs_journal check_vfs_snap \
		   check_vfs_files check_rados_store check_btree check_alloc check_txn \
		   check_file check_usage check_nocow check_reloc
$(BUILD)/check_rados: $(TOBJDIR)/test/check_rados.o $(TOBJDIR)/store/bdev_rados.o \
		$(TOBJDIR)/vfs/vfs_rados.o $(TOBJDIR)/tools/ctl_rados.o $(TOBJDIR)/test/model.o \
		$(TOBJDIR)/test/model_run.o $(TOBJDIR)/test/testutil.o $(TLIB_OBJ) \
		$(RADOS_VFS_TESTS:%=$(TOBJDIR)/test/%.o) \
		$(FSCK_SRC:%.c=$(TOBJDIR)/%.o)
	$(CC) $(TSAN_FLAGS) -pthread -o $@ $^ $(SQLITE_LIBS) $(CHECK_LIBS) $(RADOS_LIBS)

# make bench-rados: cow-rados against libcephsqlite on a cluster of its own
# (bench/rados/bench_rados.c; BENCH_RADOS_ARGS, e.g. -n 500 -r 5).
$(BUILD)/bench_rados: $(OBJDIR)/bench/rados/bench_rados.o $(OBJDIR)/store/bdev_rados.o \
		$(OBJDIR)/vfs/vfs_rados.o $(BUILD)/libcowvfs.a
	$(CC) $(SANFLAGS) $(CFLAGS) -pthread -o $@ $(filter %.o,$^) $(BUILD)/libcowvfs.a \
	  $(SQLITE_LIBS) $(RADOS_LIBS)

# the sqllogictest runner with cow-rados (sqllogictest/*.c with -DSLT_RADOS,
# in build/obj/sqllogictest/rados)
$(OBJDIR)/sqllogictest/rados/%.o: sqllogictest/%.c | need-deps
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(SANFLAGS) -DSLT_RADOS $(SQLITE_CFLAGS) $(CFLAGS) -c $< -o $@
$(BUILD)/slt_rados: $(SLT_SRC:sqllogictest/%.c=$(OBJDIR)/sqllogictest/rados/%.o) \
		$(OBJDIR)/store/bdev_rados.o $(OBJDIR)/vfs/vfs_rados.o $(BUILD)/libcowvfs.a
	$(CC) $(SANFLAGS) $(CFLAGS) -pthread -o $@ $(filter %.o,$^) $(BUILD)/libcowvfs.a \
	  $(SQLITE_LIBS) $(CRYPTO_LIBS) $(RADOS_LIBS)

BENCH_RADOS_ARGS ?=
bench-rados: deps
ifeq ($(HAVE_RADOS),1)
	$(MAKE) --no-print-directory $(BUILD)/bench_rados
	sh test/rados/run.sh ./$(BUILD)/bench_rados $(BENCH_RADOS_ARGS)
else
	@echo "bench-rados: librados is missing: skipped (make deps-rados installs it)"
endif

test-rados: deps
ifeq ($(HAVE_RADOS),1)
	$(MAKE) --no-print-directory $(BUILD)/check_rados $(BUILD)/cowctl $(BUILD)/cowvfs_rados.so \
	  $(BUILD)/slt_rados
	@if command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null; then \
	  sh test/rados/run.sh sh test/rados/tests.sh ./$(BUILD)/check_rados ./$(BUILD)/cowctl \
	    ./$(BUILD)/cowvfs_rados ./$(BUILD)/slt_rados $(SLT_OWN); \
	else echo "test-rados: ceph-mon or ceph-osd is missing: skipped (make deps-rados installs them)"; fi
else
	@echo "test-rados: librados is missing: skipped (make deps-rados installs it)"
endif

unit: deps $(BUILD)/check_all
	CK_DEFAULT_TIMEOUT=600 ./$(BUILD)/check_all

# Several processes on one container (test/check_mproc.c), alone (make
# unit runs it too).
mproc: deps $(BUILD)/check_all
	CK_RUN_SUITE=mproc CK_DEFAULT_TIMEOUT=600 ./$(BUILD)/check_all

# The concurrency tests under ThreadSanitizer: the conc and race suites and
# the vfs_* suites' threaded test cases (SUITE or SUITE/TCASE; see
# test/check_main.c).  Any TSan report fails the run (libsqlite3 is not
# instrumented: TSan sees its pthread calls, not its memory accesses, so it
# needs no suppressions).  TSan needs a memory layout it knows, which
# some kernels' address randomization breaks: the runner runs under
# setarch -R (no randomization) wherever that works.
TSAN_RUNS := conc race abort/race vfs_io/wal_threads vfs_journal/crash_and_threads vfs_snap/snapshot_threads \
             vfs_files/reloc_threads xproc inplace mproc xkill rdpath
tsan: deps $(THOBJDIR)/check_all
	@run=""; if setarch "$$(uname -m)" -R true 2>/dev/null; then run="setarch $$(uname -m) -R"; fi; \
	out=$(THOBJDIR)/tsan.out; failed=""; \
	for sel in $(TSAN_RUNS); do \
	  suite=$${sel%%/*}; tcase=""; [ "$$sel" = "$$suite" ] || tcase=$${sel#*/}; \
	  echo "tsan: CK_RUN_SUITE=$$suite CK_RUN_CASE=$$tcase"; rc=0; \
	  CK_RUN_SUITE=$$suite CK_RUN_CASE=$$tcase CK_DEFAULT_TIMEOUT=600 \
	    TSAN_OPTIONS="second_deadlock_stack=1 $$TSAN_OPTIONS" \
	    $$run ./$(THOBJDIR)/check_all >$$out 2>&1 || rc=$$?; \
	  cat $$out; \
	  if [ $$rc -ne 0 ] || grep -q ThreadSanitizer $$out; then \
	    echo "tsan: $$sel failed (exit $$rc, or a ThreadSanitizer report above)"; \
	    failed="$$failed $$sel"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "tsan: FAILED:$$failed"; exit 1; fi

# The crash simulator (test/crash/; README "Crash simulator"): built like
# check_all (ASan + UBSan, COW_DEBUG for the device hook), and at -O2 (still
# COW_DEBUG, not sanitized) in build/o2debug for the long run.
.PHONY: crash crash-ci crash-long
COBJDIR   := $(BUILD)/o2debug
$(COBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) -DCOW_DEBUG $(SQLITE_CFLAGS) $(CHECK_CFLAGS) -O2 -g -c $< -o $@

$(BUILD)/crash: $(CRASH_SRC:%.c=$(TOBJDIR)/%.o) $(TOBJDIR)/test/testutil.o $(TLIB_OBJ) \
		$(FSCK_SRC:%.c=$(TOBJDIR)/%.o)
	$(CC) $(TSAN_FLAGS) -pthread -o $@ $^ $(SQLITE_LIBS) $(CHECK_LIBS)

$(BUILD)/crash-o2: $(CRASH_SRC:%.c=$(COBJDIR)/%.o) $(COBJDIR)/test/testutil.o \
		$(LIB_SRC:%.c=$(COBJDIR)/%.o) $(FSCK_SRC:%.c=$(COBJDIR)/%.o)
	$(CC) -pthread -o $@ $^ $(SQLITE_LIBS) $(CHECK_LIBS)

crash: deps $(BUILD)/crash
	./$(BUILD)/crash --min-states 40000

crash-ci: deps $(BUILD)/crash
	./$(BUILD)/crash --min-states 10000 --txns 50

crash-long: deps $(BUILD)/crash-o2
	./$(BUILD)/crash-o2 --min-states 1000000

check-tools: deps $(ALL) $(BUILD)/asan-cowctl
	sh test/tools.sh

slt-ci: deps
	$(MAKE) --no-print-directory $(BUILD)/slt
	sh test/slt_ci.sh $(SLT_OWN) $(SLT_CORPUS)

# make test's steps, each timed (TEST_STEPS; test-rados when librados is
# there): "make test: STEP took N s" after each, so that a slow CI run
# shows where its time went.  Each step's builds run one job per CPU
# (TEST_JOBS) unless make was given -j itself.
NPROC     := $(shell nproc 2>/dev/null || echo 1)
TEST_JOBS  = $(if $(findstring jobserver,$(MAKEFLAGS))$(filter -j%,$(MAKEFLAGS)),,-j$(NPROC))
TEST_STEPS := all unit tsan race-proof check-tools crash-ci slt-ci fuzz-ci sweep
ifeq ($(HAVE_RADOS),1)
  TEST_STEPS += test-rados
endif
test: deps
	@t00=$$(date +%s); for s in $(TEST_STEPS); do t0=$$(date +%s); \
	    $(MAKE) $(TEST_JOBS) $$s || exit 1; \
	    echo "make test: $$s took $$(($$(date +%s) - t0)) s ($$(($$(date +%s) - t00)) s in all)"; \
	done

demo: deps
	$(MAKE) --no-print-directory all
	sh tools/demo.sh $(SLT_CORPUS)

slt: deps
	$(MAKE) --no-print-directory $(BUILD)/slt
	sh test/slt_full.sh $(SLT_OWN)
	@if [ -n "$(SLT_CORPUS)" ]; then sh test/slt_full.sh $(SLT_CORPUS); \
	else echo "slt: no development corpus (../shared/sqllogictest or SLT_CORPUS=DIR): the project's files only"; fi

bench: deps $(BUILD)/bench
	./$(BUILD)/bench

# make bench-speedtest1 SPEEDTEST1_C=PATH: SQLite's own benchmark (the
# test/speedtest1.c of a SQLite source tree, which this project does not
# carry) on unix and cow in one run, results compared, times and sizes side
# by side (bench/speedtest1/run.sh; SPEEDTEST1_ARGS its options, REPEAT=N).
SPEEDTEST1_C    ?=
SPEEDTEST1_ARGS ?= --size 50
$(BUILD)/speedtest1: bench/speedtest1/main.c $(SPEEDTEST1_C) $(BUILD)/libcowvfs.a
	@[ -n "$(SPEEDTEST1_C)" ] || { echo "speedtest1: SPEEDTEST1_C=PATH of speedtest1.c (a SQLite source tree's test/speedtest1.c) is needed"; exit 1; }
	$(CC) $(CFLAGS) -w -Dmain=speedtest1_main $(SQLITE_CFLAGS) -c $(SPEEDTEST1_C) -o $(BUILD)/speedtest1_upstream.o
	$(CC) -std=c11 -pthread $(WARN) $(CPPFLAGS_ALL) $(CFLAGS) $(SQLITE_CFLAGS) -o $@ bench/speedtest1/main.c \
	  $(BUILD)/speedtest1_upstream.o $(BUILD)/libcowvfs.a $(SQLITE_LIBS) $(CRYPTO_LIBS) -lm

bench-speedtest1: deps $(BUILD)/speedtest1
	sh bench/speedtest1/run.sh ./$(BUILD)/speedtest1 $(SPEEDTEST1_ARGS)

# ---- install ----
install: $(ALL)
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(BUILD)/libcowvfs.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/cowvfs.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/cowvfs.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BUILD)/cowctl $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' cowvfs.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/cowvfs.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libcowvfs.a $(DESTDIR)$(PREFIX)/lib/cowvfs.so \
	  $(DESTDIR)$(PREFIX)/include/cowvfs.h $(DESTDIR)$(PREFIX)/bin/cowctl \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/cowvfs.pc

clean:
	rm -rf $(BUILD)

# ---- race-proof: each race test fails when its invariant is broken ----
# For each COW_BREAK_* switch (see test/check_race.c), the test build is
# made again with it (in build/proof-SWITCH) and the matching race test
# must fail; a pass means the test cannot see the race.  An entry
# SWITCH:SUITE/CASE names a case of another suite than race (xproc).
EXTRA_DEFS ?=
RACE_BREAKS := COW_BREAK_OE_ORDER:race_fsync COW_BREAK_INVALIDATE:race_truncate \
               COW_BREAK_RESV_SHARED:race_resv COW_BREAK_RELOC_NOCOW:race_reloc \
               COW_BREAK_CLONE_UNLOCKED:race_clone \
               COW_BREAK_XPROC_UNPINNED:xproc/xproc_pin COW_BREAK_XPROC_NO_REPLAY:xproc/xproc_killed \
               COW_BREAK_XPROC_NO_ALLOCS:xproc/xproc_journal \
               COW_BREAK_READ_UNPINNED:rdpath/rdpath_read \
               COW_BREAK_INPLACE_BARRIER:inplace/inplace_reloc \
               COW_BREAK_INPLACE_STALE:inplace/inplace_snapshot
# Each proof build starts from the test build's objects (hard links into
# build/proof-SWITCH/asan, with their .d files), less the objects of the
# sources that name the switch and of those whose .d names a header that
# does: only those are compiled again with it (a whole ASan build each took
# 67 s, eleven of them most of make test's time).  A removed link is a new
# file, so the test build's objects are never written through it.
race-proof: deps $(BUILD)/check_all
	@for b in $(RACE_BREAKS); do \
	  def=$${b%%:*}; tc=$${b#*:}; suite=race; \
	  case $$tc in */*) suite=$${tc%%/*}; tc=$${tc#*/};; esac; dir=$(BUILD)/proof-$$def; \
	  rm -rf $$dir; mkdir -p $$dir && cp -al $(TOBJDIR) $$dir/asan || exit 1; \
	  for f in $$(grep -rl --include="*.c" --include="*.h" -- "$$def" include store vfs test tools); do \
	    case $$f in \
	      *.c) rm -f $$dir/asan/$${f%.c}.o;; \
	      *.h) for d in $$(grep -rl --include="*.d" -- "$$f" $$dir/asan); do rm -f $${d%.d}.o; done;; \
	    esac; \
	  done; \
	  $(MAKE) --no-print-directory BUILD=$$dir EXTRA_DEFS=-D$$def $$dir/check_all \
	    >$(BUILD)/proof-build.log 2>&1 || { cat $(BUILD)/proof-build.log; exit 1; }; \
	  if CK_RUN_SUITE=$$suite CK_RUN_CASE=$$tc CK_DEFAULT_TIMEOUT=120 ./$$dir/check_all \
	       >$$dir/out 2>&1; then \
	    cat $$dir/out; echo "race-proof: $$tc PASSED with -D$$def: it cannot see the race"; exit 1; \
	  fi; \
	  grep -q ":F:$$tc:" $$dir/out || { cat $$dir/out; echo "race-proof: $$tc did not fail an assertion"; exit 1; }; \
	  echo "race-proof: $$tc fails with -D$$def, as it must:"; grep ":F:$$tc:" $$dir/out | sed 's/^/    /'; \
	done

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- fuzzing (README "Fuzzing and the corruption sweep") ----
# libFuzzer harnesses (test/fuzz/), built with clang and the library built
# again with the same instrumentation (ASan, UBSan, coverage) in build/fuzz.
# Their inputs are patches to small containers that build/fuzz/mkbases
# makes through the VFS (build/fuzz/bases, with seed corpora in
# build/fuzz/seeds).  make fuzz runs each harness FUZZ_TIME seconds;
# fuzz-ci (make test) FUZZ_CI_TIME seconds.  Any crash, hang (FUZZ_TIMEOUT
# seconds for one input), leak or sanitizer report fails the run; the
# input is left in build/fuzz/artifacts.
.PHONY: fuzz fuzz-ci fuzz-build
FUZZ_CC       ?= clang
FUZZ_TIME     ?= 600
FUZZ_CI_TIME  ?= 15
FUZZ_TIMEOUT  ?= 30
FUZZERS       := open replay fsck vfs
FUZZDIR       := $(BUILD)/fuzz
FUZZ_SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_OBJ_LIB  := $(LIB_SRC:%.c=$(FUZZDIR)/obj/%.o) $(FSCK_SRC:%.c=$(FUZZDIR)/obj/%.o) \
                 $(FUZZDIR)/obj/test/testutil.o $(FUZZDIR)/obj/test/fuzz/fuzzlib.o
FUZZ_BINS     := $(FUZZERS:%=$(FUZZDIR)/fuzz_%)

$(FUZZDIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(BASEFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -DCOW_DEBUG $(SQLITE_CFLAGS) \
	  $(CHECK_CFLAGS) -O1 -g -c $< -o $@

$(FUZZDIR)/obj/test/fuzz/fuzz_replay.o: test/fuzz/fuzz_store.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(BASEFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -DCOW_DEBUG -DFZ_REPLAY \
	  $(SQLITE_CFLAGS) $(CHECK_CFLAGS) -O1 -g -c $< -o $@

$(FUZZDIR)/obj/test/fuzz/fuzz_open.o: test/fuzz/fuzz_store.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(BASEFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -DCOW_DEBUG \
	  $(SQLITE_CFLAGS) $(CHECK_CFLAGS) -O1 -g -c $< -o $@

# Objects reached only through the pattern rule below: keep them (make would
# delete them as intermediate files and rebuild every time).
.SECONDARY: $(FUZZ_OBJ_LIB) $(FUZZERS:%=$(FUZZDIR)/obj/test/fuzz/fuzz_%.o)

$(FUZZDIR)/fuzz_%: $(FUZZDIR)/obj/test/fuzz/fuzz_%.o $(FUZZ_OBJ_LIB)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -pthread -o $@ $^ $(SQLITE_LIBS) $(CHECK_LIBS)

# The bases and seeds: made by the build (ASan test objects), never committed.
$(FUZZDIR)/mkbases: $(TOBJDIR)/test/fuzz/mkbases.o $(TOBJDIR)/test/fuzz/fuzzlib.o \
		$(TOBJDIR)/test/testutil.o $(TLIB_OBJ) $(FSCK_SRC:%.c=$(TOBJDIR)/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_FLAGS) -pthread -o $@ $^ $(SQLITE_LIBS) $(CHECK_LIBS)

$(FUZZDIR)/bases/.made: $(FUZZDIR)/mkbases
	rm -rf $(FUZZDIR)/bases $(FUZZDIR)/seeds
	./$(FUZZDIR)/mkbases $(FUZZDIR)
	touch $@

fuzz-build: deps $(FUZZ_BINS) $(FUZZDIR)/bases/.made

# run-fuzz SECONDS,FLAGS: each harness in turn, its corpus kept in
# build/fuzz/corpus/NAME (new inputs found are added there).  A harness
# fails if libFuzzer exits non-zero or leaves a new input in
# build/fuzz/artifacts (make fuzz runs in fork mode, which goes on after a
# crash, leak or hang so that one run finds them all).
define run-fuzz
	@mkdir -p $(FUZZDIR)/artifacts; failed=""; \
	for h in $(FUZZERS); do \
	  mkdir -p $(FUZZDIR)/corpus/$$h; touch $(FUZZDIR)/artifacts/.start-$$h; \
	  echo "fuzz: $$h for $(1) s"; \
	  ASAN_OPTIONS="detect_leaks=1 $$ASAN_OPTIONS" ./$(FUZZDIR)/fuzz_$$h $(2) \
	    -max_total_time=$(1) -timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZDIR)/artifacts/$$h- \
	    $(FUZZDIR)/corpus/$$h $(FUZZDIR)/seeds/$$h >$(FUZZDIR)/$$h.log 2>&1; rc=$$?; \
	  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added" \
	    $(FUZZDIR)/$$h.log | sed 's/^/    /'; \
	  grep -E "^#[0-9]+: cov" $(FUZZDIR)/$$h.log | tail -n 1 | sed 's/^/    fork mode: /'; \
	  new=$$(find $(FUZZDIR)/artifacts -name "$$h-*" -newer $(FUZZDIR)/artifacts/.start-$$h); \
	  if [ $$rc -ne 0 ] || [ -n "$$new" ]; then \
	    grep -E "ERROR|SUMMARY|^fuzz_[a-z]+:|^    #[0-9] " $(FUZZDIR)/$$h.log | head -n 40; \
	    echo "fuzz: $$h FAILED (exit $$rc; log $(FUZZDIR)/$$h.log); inputs:" $$new; \
	    failed="$$failed $$h"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed"; exit 1; fi
endef

fuzz: fuzz-build
	$(call run-fuzz,$(FUZZ_TIME),-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)

fuzz-ci: fuzz-build
	$(call run-fuzz,$(FUZZ_CI_TIME),)

# ---- the corruption sweep (test/sweep/sweep.c; README "Fuzzing and the
# corruption sweep"): make sweep (in make test) a fixed-seed sample,
# sweep-full every target byte.  Fails on silently wrong data or a crash.
.PHONY: sweep sweep-full
SWEEP_JOBS ?= 2
$(BUILD)/sweep: $(TOBJDIR)/test/sweep/sweep.o $(TOBJDIR)/test/fuzz/fuzzlib.o \
		$(TOBJDIR)/test/testutil.o $(TLIB_OBJ) $(FSCK_SRC:%.c=$(TOBJDIR)/%.o)
	$(CC) $(TSAN_FLAGS) -pthread -o $@ $^ $(SQLITE_LIBS) $(CHECK_LIBS)

sweep: deps $(BUILD)/sweep
	./$(BUILD)/sweep --jobs $(SWEEP_JOBS)

sweep-full: deps $(BUILD)/sweep
	./$(BUILD)/sweep --full --jobs $(SWEEP_JOBS)
