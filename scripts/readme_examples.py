"""Print the README's example code blocks of one language, so the demo and the tests run
exactly what the README shows.

    python scripts/readme_examples.py sql      # every ```sql block, in order
    python scripts/readme_examples.py python   # every ```python block
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def examples(language: str, readme: Path = README) -> list[str]:
    """The code blocks fenced as ```<language> in the README, in order."""
    pattern = re.compile(rf"^```{re.escape(language)}\n(.*?)^```", re.MULTILINE | re.DOTALL)
    return pattern.findall(readme.read_text())


if __name__ == "__main__":
    blocks = examples(sys.argv[1])
    if not blocks:
        sys.exit(f"README.md has no ```{sys.argv[1]} block")
    print("\n".join(blocks), end="")
