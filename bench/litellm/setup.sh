#!/usr/bin/env bash
# Create the LiteLLM benchmark's own virtualenv (bench/.venv-litellm, git-ignored) and
# install litellm[proxy] from PyPI into it. LiteLLM is not a Thrifty dependency: it is
# only the comparison target of bench/bench_vs_litellm.py.
#
#   bash bench/litellm/setup.sh            # latest litellm[proxy]
#   LITELLM_VERSION=1.2.3 bash bench/litellm/setup.sh
#
# Then, for LiteLLM's spend logs on PostgreSQL, it tries `prisma generate`, which needs
# the Prisma engines; see bench/litellm/README.md for what happens offline.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${LITELLM_VENV:-$here/../.venv-litellm}"
python="${PYTHON:-python3}"
spec="litellm[proxy]${LITELLM_VERSION:+==$LITELLM_VERSION}"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "$spec" prisma psutil
"$venv/bin/python" -c 'import importlib.metadata as m; print("litellm", m.version("litellm"))'

# LiteLLM's spend logs live in PostgreSQL through prisma; generating its client needs
# the Prisma query engine, which prisma downloads on first use.
schema="$("$venv/bin/python" -c 'import litellm, pathlib; print(pathlib.Path(litellm.__file__).parent / "proxy" / "schema.prisma")')"
if (cd "$(dirname "$schema")" && timeout 300 "$venv/bin/prisma" generate --schema "$schema"); then
  touch "$venv/prisma-generated"
  echo "prisma client generated: LiteLLM can write spend logs to PostgreSQL"
else
  rm -f "$venv/prisma-generated"
  echo "prisma generate failed (its engines download from the internet): the benchmark" \
    "runs LiteLLM without a database, with bench/litellm/spend_log.py as its spend log" >&2
fi
