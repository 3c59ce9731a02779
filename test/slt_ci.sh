#!/bin/sh
# test/slt_ci.sh CORPUS_DIR
#
# The sqllogictest slice for CI: test/slt_full.sh (cow against the default
# VFS, same counts and 0 failed in both) on a subset of the corpus, chosen
# to stay well inside 3 minutes for both runs on a 2-core machine even if
# cow is twice as slow as unix:
#
#   select1-3, all of evidence/, and the quickest file (measured with the
#   default VFS) of each index/ and random/ kind.
#
# With the default VFS, serially, the slice takes about 5 s (index/delete
# is the slowest part, about 1.2 s).  Run from the repository root;
# SLT and SLT_JOBS are passed on to test/slt_full.sh.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 CORPUS_DIR" >&2
    exit 2
fi

# The slice the project ships (test/slt: select1, select2, evidence) has
# none of the generated index/ and random/ files: it runs whole.
if [ ! -d "$1/index" ]; then
    echo "slt-ci: $1 is the shipped slice (no index/ or random/ files): running all of it"
    set -x
    exec sh test/slt_full.sh "$1" select1.test select2.test evidence
fi

set -x
exec sh test/slt_full.sh "$1" \
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
