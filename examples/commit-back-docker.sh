#!/bin/sh
# The same with the image: the workspace is mounted at its own path and is the
# working directory, as Pipelines does with the clone. Used by the Jenkinsfile.
#
#   BITBUCKET_ACCESS_TOKEN=… FILES=generated/ examples/commit-back-docker.sh
set -eu
: "${FILES:=generated/}"
if [ -z "${BRANCH:-}" ] && [ -n "${GIT_BRANCH:-}" ]; then
  BRANCH=${GIT_BRANCH#origin/}
fi
export FILES BRANCH
status=0
# Only variables that are set are passed (-e NAME copies NAME from this environment).
docker run --rm ${DOCKER_NETWORK:+--network "$DOCKER_NETWORK"} \
  --user "$(id -u):$(id -g)" \
  -v "$PWD:$PWD" -w "$PWD" \
  -e FILES -e BRANCH -e REPOSITORY -e REMOTE_URL -e COMMIT_MESSAGE -e TAG -e DRY_RUN -e DEBUG \
  -e BITBUCKET_ACCESS_TOKEN -e ATLASSIAN_ACCOUNT_EMAIL -e ATLASSIAN_API_TOKEN -e SSH_KEY -e KNOWN_HOSTS \
  "${COMMIT_BACK_IMAGE:-commitback/commit-back:0.1.0}" > commit-back-report.json || status=$?
exit "$status"
