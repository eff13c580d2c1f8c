"""Reads the table ``harness run`` ends with (header, then one row per run, the genotype last)."""

import re

_ROW = re.compile(r"^\d+\s+(completed|failed|running|interrupted)\s")


def run_rows(stdout: str) -> list[list[str]]:
    """[id, status, method, space, dataset, seed, test acc, genotype] per run, in printed order. Lines that
    are not rows (the header; anything else printed to stdout, as Ray does) are left out."""
    return [line.split(None, 7) for line in stdout.splitlines() if _ROW.match(line)]
