"""`python -m logreg` is the `logreg` console script."""

from logreg.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
