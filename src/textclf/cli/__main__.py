"""`python -m textclf.cli`: the same command line as `textclf`."""

from textclf.cli import main

main()
