#!/usr/bin/env bash
# The scheduled pipeline end to end: make an input file, ingest it into a Zarr store, fit with checkpoints on
# the cluster of cluster.yaml, and inspect the result.
#
#   examples/batch_job/run.sh [WORKDIR]
#
# The full run factorizes a 1,000,000 × 50,000 matrix with 2e7 non-zeros (rank 16). DNMF_BATCH_SMALL=1 runs the
# same steps on a 20,000 × 2,000 matrix with 2e5 non-zeros, for tests. Rerunning the script after a crash or a
# kill resumes the fit from its last checkpoint; rerunning it after success does nothing more.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
workdir="${1:-${here}/work}"
mkdir -p "${workdir}"

if [[ "${DNMF_BATCH_SMALL:-0}" == "1" ]]; then
    rows=20000 cols=2000 nnz=200000
else
    rows=1000000 cols=50000 nnz=20000000
fi

if [[ ! -e "${workdir}/input.npz" ]]; then
    python "${here}/make_input.py" "${workdir}/input.npz" "${rows}" "${cols}" "${nnz}"
fi
if [[ ! -e "${workdir}/matrix.zarr" ]]; then
    dnmf ingest "${workdir}/input.npz" "${workdir}/matrix.zarr"
fi
dnmf fit "${workdir}/matrix.zarr" --config "${here}/job.toml" --cluster "${here}/cluster.yaml" \
    --out "${workdir}/result.zarr" --checkpoint "${workdir}/checkpoint" --summary "${workdir}/summary.json"
dnmf inspect "${workdir}/result.zarr" --top 5
