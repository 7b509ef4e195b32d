#!/usr/bin/env bash
# The whole test suite, from a fresh clone, as root: installs what it needs, checks types and
# formatting, builds dist/tabby, then runs every suite (unit, integration, etcd, qemu, runtimes).
set -euo pipefail
cd "$(dirname "$0")"
test/setup.sh
npm run lint
npm run build
npm test
