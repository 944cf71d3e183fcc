"""``python -m core.cli``: the same as the ``clasp`` console script."""

from core.cli import main

if __name__ == "__main__":
    main()
