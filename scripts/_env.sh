# Shared by scripts/run and scripts/test: create .venv if missing and install zhiku into it.
# Sourced, not executed. Re-installs only when pyproject.toml changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ZHIKU_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
# PyTorch's CPU build, installed before sentence-transformers so pip does not pull a multi-GB CUDA build.
TORCH_SPEC="torch==2.13.0"

# Install the Debian packages listed in the given files (one per line, # comments) that are missing, as root with
# apt-get: scripts/run passes scripts/system-packages.txt, scripts/test also scripts/system-packages-test.txt.
zhiku_system_packages() {
    local missing=() pkg list
    for list in "$@"; do
        while read -r pkg; do
            [ -z "$pkg" ] || [[ "$pkg" == \#* ]] && continue
            dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
        done < "$list"
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "==> apt-get install ${missing[*]}"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
        else
            echo "warning: missing system packages (install them as root): ${missing[*]}" >&2
        fi
    fi
}

zhiku_venv() {
    local extras="$1"   # "" (no PyTorch), "[torch]" or "[dev]" (both bring PyTorch)
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating $VENV"
        "$PYTHON" -m venv "$VENV"
        # a current pip here; users' may be the venv's bundled one (23.2.1 on Python 3.11), which resolves
        # some extras differently: tests/security/test_install.py checks zhiku's dependencies with that pip
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
    fi
    local stamp="$VENV/.zhiku-installed${extras}"
    local want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        if [ -n "$extras" ]; then
            echo "==> installing $TORCH_SPEC (CPU) and zhiku$extras into $VENV"
            "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
        else
            echo "==> installing zhiku (without PyTorch: ./scripts/run --torch adds it) into $VENV"
        fi
        "$VENV/bin/python" -m pip install --quiet -e "$ROOT$extras"
        echo "$want" > "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}
