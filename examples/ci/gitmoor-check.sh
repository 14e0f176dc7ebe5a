#!/bin/sh
# gitmoor-check.sh: the pre-merge checks of a GitOps repository, for any CI.
#
#   sh gitmoor-check.sh [REPO_ROOT]          (default: the current directory)
#
# 1. `gitmoor lint`: every app of the repository rendered as gitmoor renders it,
#    checked without a cluster. SARIF 2.1.0 goes to $GITMOOR_SARIF (for code
#    scanning); when lint fails, the human report is printed too.
# 2. `gitmoor diff --local REPO_ROOT --all-apps -o markdown`: what merging would
#    change in the cluster, for every Application whose path the working tree
#    holds (server-side dry-run, Secrets masked), written to $GITMOOR_DIFF_MARKDOWN
#    ready to post as a pull-request comment. Needs a kubeconfig (KUBECONFIG) that
#    may read the Applications and dry-run their objects.
#
# Exit code: lint's own (0 clean, 1 findings that fail, 2 lint could not run);
# then 2 when the diff could not run. The diff's 1 ("there are differences") is
# what a pull request is for, so it fails the script only with GITMOOR_FAIL_ON_DIFF=1.
# The diff runs even when lint fails, so the reviewer sees both.
#
# Settings (environment):
#   GITMOOR                the command (default: gitmoor; e.g. "uvx gitmoor")
#   GITMOOR_LINT_ARGS      more lint arguments, split on spaces (e.g. "--strict
#                          --required-rule image-tag"); paths default to REPO_ROOT
#   GITMOOR_SARIF          SARIF file (default: gitmoor-lint.sarif)
#   GITMOOR_DIFF_MARKDOWN  markdown file (default: gitmoor-diff.md)
#   GITMOOR_SKIP_LINT=1, GITMOOR_SKIP_DIFF=1   run one half only
#   GITMOOR_FAIL_ON_DIFF=1 exit 1 when the diff finds differences
set -u

root=${1:-.}
gitmoor=${GITMOOR:-gitmoor}
sarif=${GITMOOR_SARIF:-gitmoor-lint.sarif}
markdown=${GITMOOR_DIFF_MARKDOWN:-gitmoor-diff.md}
status=0

if [ "${GITMOOR_SKIP_LINT:-0}" != 1 ]; then
    # $gitmoor and $GITMOOR_LINT_ARGS are split on purpose: POSIX sh has no arrays.
    # shellcheck disable=SC2086
    $gitmoor lint ${GITMOOR_LINT_ARGS:-} -o sarif "$root" >"$sarif"
    lint_status=$?
    echo "gitmoor-check: lint exit=$lint_status sarif=$sarif" >&2
    if [ "$lint_status" -eq 1 ]; then
        # shellcheck disable=SC2086
        $gitmoor lint ${GITMOOR_LINT_ARGS:-} "$root" >&2
    fi
    status=$lint_status
fi

if [ "${GITMOOR_SKIP_DIFF:-0}" != 1 ]; then
    $gitmoor diff --local "$root" --all-apps -o markdown >"$markdown"
    diff_status=$?
    echo "gitmoor-check: diff exit=$diff_status markdown=$markdown" >&2
    if [ "$diff_status" -ge 2 ]; then
        [ "$status" -lt 2 ] && status=2
    elif [ "$diff_status" -eq 1 ] && [ "${GITMOOR_FAIL_ON_DIFF:-0}" = 1 ]; then
        [ "$status" -eq 0 ] && status=1
    fi
fi

exit "$status"
