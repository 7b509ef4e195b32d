#!/usr/bin/env bash
# The whole test suite, from a fresh clone, as root: installs what it needs, builds dist/tabby,
# then runs the unit tests and the namespace (integration) tests.
set -euo pipefail
cd "$(dirname "$0")"
test/setup.sh
npm run build
npm test
