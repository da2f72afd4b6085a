#!/bin/sh
# Push generated files back from any CI runner or a laptop, with the static
# binary (no Docker). Run it in the clone. Configuration is the same
# environment variables as the pipe; outside Pipelines BRANCH, REPOSITORY and
# the remote default to the checkout (branch, origin).
#
#   BITBUCKET_ACCESS_TOKEN=… FILES=generated/ examples/push-back.sh
#
# The JSON report is written to commit-back-report.json; the exit code is
# commit-back's (0 pushed or nothing to do, 4 branch restriction, …).
set -eu
: "${FILES:=generated/}"
export FILES
# A CI checkout of a commit has a detached HEAD: name the branch (Jenkins sets GIT_BRANCH).
if [ -z "${BRANCH:-}" ] && [ -n "${GIT_BRANCH:-}" ]; then
  BRANCH=${GIT_BRANCH#origin/}
  export BRANCH
fi
status=0
"${COMMIT_BACK:-commit-back}" > commit-back-report.json || status=$?
exit "$status"
