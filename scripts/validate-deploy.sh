#!/usr/bin/env bash
# Validate the deployment material under deploy/, offline: the Kubernetes
# manifests (strict schemas of a pinned Kubernetes version, KEDA's
# ScaledObject schema in deploy/kubernetes/schemas/, kustomize, and checks
# that the resources and the pipeline file agree), the Dockerfile (hadolint)
# and the Grafana dashboard (structure, and every query's PromQL).
#
#   scripts/validate-deploy.sh [PATH...]    # default: deploy/kubernetes
#
# PATH: manifest directories or files, e.g. a modified copy. The tools are
# pinned in scripts/validate-deploy.requirements.txt and installed on first
# use into target/deploy-venv (WEIR_DEPLOY_VENV overrides), then reused;
# only that install needs PyPI. WEIR_KUBERNETES_VERSION picks the
# Kubernetes version (default: see scripts/validate_deploy.py). Prints what
# it checked; exits non-zero on any problem. Needs python3 with venv
# (Debian: python3-venv).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${WEIR_DEPLOY_VENV:-$root/target/deploy-venv}"
requirements="$root/scripts/validate-deploy.requirements.txt"

# The venv is (re)made when the pinned versions or the Python change. A lock
# keeps concurrent runs (parallel tests) from building it twice at once.
want="$(sha256sum "$requirements" | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"
mkdir -p "$(dirname "$venv")"
(
    flock 9
    if [ "$(cat "$venv/.weir-installed" 2>/dev/null)" != "$want" ] \
        || ! "$venv/bin/python" -c '' 2>/dev/null; then
        echo "validate-deploy: installing the pinned validators into $venv" >&2
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
            --require-virtualenv -r "$requirements" >&2
        echo "$want" > "$venv/.weir-installed"
    fi
) 9>"$venv.lock"

exec "$venv/bin/python" "$root/scripts/validate_deploy.py" --root "$root" "$@"
