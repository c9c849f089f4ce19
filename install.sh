#!/usr/bin/env bash
# Installs everything the toolkit and its tests need on a Debian machine (run as root):
# Deno 2 (from the npm registry), both MPI families, Slurm with munge for the local
# test cluster, and GNU time and strace for `deno task bench`. Safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  mpich libmpich-dev openmpi-bin libopenmpi-dev \
  slurmctld slurmd slurm-client munge \
  gcc libc6-dev openssl coreutils util-linux procps ca-certificates time strace >/dev/null
if ! command -v deno >/dev/null 2>&1 || ! deno --version | grep -q '^deno 2\.'; then
  npm install -g deno@2 --loglevel=error
fi
deno --version | head -n 1
