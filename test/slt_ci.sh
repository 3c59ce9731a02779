#!/bin/sh
# test/slt_ci.sh OWN_DIR [CORPUS_DIR]
#
# The sqllogictest part of make test: test/slt_full.sh (cow against the
# default VFS: 0 failed in both, and the same records run) on
#
#   - OWN_DIR, the project's own files (sqllogictest/*.test), always;
#   - a slice of the development corpus CORPUS_DIR, when one is given (the
#     Makefile passes ../shared/sqllogictest when it is there, or
#     SLT_CORPUS): select1-3, all of evidence/, and the quickest file
#     (measured with the default VFS) of each index/ and random/ kind,
#     chosen to stay well inside 3 minutes for both runs on a 2-core
#     machine even if cow is twice as slow as unix (with the default VFS,
#     serially, the slice takes about 5 s).  A corpus without index/ runs
#     whole.  Without CORPUS_DIR one line says so.
#
# Run from the repository root; SLT and SLT_JOBS are passed on to
# test/slt_full.sh.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 OWN_DIR [CORPUS_DIR]" >&2
    exit 2
fi
own=$1
corpus=${2:-}

echo "slt-ci: the project's own files ($own)"
sh test/slt_full.sh "$own"

if [ -z "$corpus" ]; then
    echo "slt-ci: no development corpus (../shared/sqllogictest or SLT_CORPUS=DIR): ran the project's own files only"
    exit 0
fi
if [ ! -d "$corpus" ]; then
    echo "slt-ci: SLT_CORPUS=$corpus is not a directory" >&2
    exit 2
fi
if [ ! -d "$corpus/index" ]; then
    echo "slt-ci: $corpus has no index/ or random/ files: running all of it"
    set -x
    exec sh test/slt_full.sh "$corpus"
fi

echo "slt-ci: a slice of the development corpus ($corpus)"
set -x
exec sh test/slt_full.sh "$corpus" \
    select1.test select2.test select3.test \
    evidence \
    index/between/10/slt_good_1.test \
    index/commute/10/slt_good_0.test \
    index/delete/10/slt_good_0.test \
    index/in/10/slt_good_3.test \
    index/orderby/10/slt_good_0.test \
    index/orderby_nosort/10/slt_good_0.test \
    index/random/10/slt_good_0.test \
    index/view/10/slt_good_1.test \
    random/aggregates/slt_good_0.test \
    random/expr/slt_good_32.test \
    random/groupby/slt_good_0.test \
    random/select/slt_good_112.test
