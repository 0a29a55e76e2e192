"""Put this checkout's src/ first on sys.path before a script imports plmxai.

The per-family conda environments (envs/, `--sdm conda`) hold the libraries but not plmxai:
installing it there would pull all of its dependencies into each of them. Without conda this
is the same code that `pip install -e .` installed. Snakemake adds the scripts' folder to
sys.path, so every script can import this module first.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
