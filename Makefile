# cowvfs - an SQLite VFS on a copy-on-write extent store.
#
#   make          build/cowvfs.so, build/libcowvfs.a, build/cowctl, build/slt
#   make demo     the main job, shown step by step (see README.md)
#   make test     every test (unit tests under ASan+UBSan, tools, sqllogictest slice)
#   make slt      the whole ../shared/sqllogictest corpus through cow and unix
#   make bench    benchmarks, cow against unix in one run
#   make install  PREFIX=/usr/local DESTDIR=
#
# Overridable: CC, CFLAGS, PREFIX, DESTDIR, SANITIZE (e.g. address,undefined).

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
SLT_CORPUS ?= ../shared/sqllogictest

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

STORE_SRC := $(wildcard store/*.c)
VFS_SRC   := $(wildcard vfs/*.c)
LIB_SRC   := $(STORE_SRC) $(VFS_SRC)
TEST_SRC  := $(wildcard test/*.c)

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

ALL := $(BUILD)/cowvfs.so $(BUILD)/libcowvfs.a $(BUILD)/cowctl $(BUILD)/slt

.PHONY: all deps test unit demo slt slt-ci bench install uninstall clean check-tools
all: deps $(ALL)

# ---- dependencies: installed by the targets themselves when run as root ----
DEB_PKGS := gcc make pkg-config libsqlite3-dev sqlite3 libssl-dev check libsubunit-dev python3
deps:
	@missing=""; for p in $(DEB_PKGS); do \
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

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(SANFLAGS) $(SQLITE_CFLAGS) $(CFLAGS) -c $< -o $@

$(EOBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(SANFLAGS) -DCOWVFS_LOADABLE $(SQLITE_CFLAGS) $(CFLAGS) -c $< -o $@

$(TOBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(TSAN_FLAGS) -DCOW_DEBUG $(SQLITE_CFLAGS) $(CHECK_CFLAGS) -O1 -g -c $< -o $@

$(BUILD)/libcowvfs.a: $(LIB_OBJ)
	@mkdir -p $(BUILD)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/cowvfs.so: $(EXT_OBJ)
	$(CC) -shared $(SANFLAGS) $(CFLAGS) -pthread -o $@ $^

$(BUILD)/cowctl: $(OBJDIR)/tools/cowctl.o $(OBJDIR)/tools/fsck.o $(BUILD)/libcowvfs.a
	$(CC) $(SANFLAGS) $(CFLAGS) -pthread -o $@ $(filter %.o,$^) $(BUILD)/libcowvfs.a $(SQLITE_LIBS)

$(BUILD)/slt: $(OBJDIR)/sqllogictest/slt.o $(BUILD)/libcowvfs.a
	$(CC) $(SANFLAGS) $(CFLAGS) -pthread -o $@ $< $(BUILD)/libcowvfs.a $(SQLITE_LIBS) $(CRYPTO_LIBS)

$(BUILD)/bench: $(OBJDIR)/bench/bench.o $(BUILD)/libcowvfs.a
	$(CC) $(SANFLAGS) $(CFLAGS) -pthread -o $@ $< $(BUILD)/libcowvfs.a $(SQLITE_LIBS)

# Unit tests: Check, ASan + UBSan.  tools/fsck.c is linked in so tests can fsck.
$(BUILD)/check_all: $(TTEST_OBJ) $(TLIB_OBJ) $(TOBJDIR)/tools/fsck.o
	$(CC) $(TSAN_FLAGS) -pthread -o $@ $^ $(SQLITE_LIBS) $(CHECK_LIBS)

# The asan build of cowctl/slt, used by tests so the tools run sanitized too.
$(BUILD)/asan-cowctl: $(TOBJDIR)/tools/cowctl.o $(TOBJDIR)/tools/fsck.o $(TLIB_OBJ)
	$(CC) $(TSAN_FLAGS) -pthread -o $@ $^ $(SQLITE_LIBS)

unit: deps $(BUILD)/check_all
	CK_DEFAULT_TIMEOUT=600 ./$(BUILD)/check_all

check-tools: deps $(ALL) $(BUILD)/asan-cowctl
	sh test/tools.sh

slt-ci: deps $(BUILD)/slt
	sh test/slt_ci.sh $(SLT_CORPUS)

test: deps $(ALL)
	$(MAKE) unit
	$(MAKE) check-tools
	$(MAKE) slt-ci

demo: deps $(ALL)
	sh tools/demo.sh $(SLT_CORPUS)

slt: deps $(BUILD)/slt
	sh test/slt_full.sh $(SLT_CORPUS)

bench: deps $(BUILD)/bench
	./$(BUILD)/bench

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

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
