"""Finding a database's raw CSV tables in a folder: one implementation for every loader that reads them.

MIMIC-III and eICU-CRD ship as folders of tables (``.csv`` or ``.csv.gz``; file names in
upper case in the full MIMIC-III, lower case in its demo, mixed case in eICU). Their loaders'
``find_source_files`` are both made by :func:`table_finder`, so a missing table reads the
same way for every database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tardiff.errors import DataError


def find_table(data_dir: Path, name: str) -> Path | None:
    """``data_dir/<name>.csv`` or ``.csv.gz``, matching the name in any case; None if absent.

    Examples
    --------
    >>> find_table(Path("../shared/data/mimic3_demo"), "patients")  # doctest: +SKIP
    PosixPath('../shared/data/mimic3_demo/PATIENTS.csv.gz')
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return None
    wanted = {f"{name.lower()}.csv", f"{name.lower()}.csv.gz"}
    matches = sorted(p for p in data_dir.iterdir() if p.name.lower() in wanted and p.is_file())
    return matches[0] if matches else None


def find_tables(data_dir: Path, tables: Sequence[str], *, database: str, folder: str) -> list[Path]:
    """The files of ``tables`` in ``data_dir`` (in that order), or a one-line DataError naming the missing ones.

    Parameters
    ----------
    data_dir : Path
        The folder to look in (never downloaded into).
    tables : sequence of str
        Table names, each found as ``<name>.csv`` or ``<name>.csv.gz`` in any case.
    database : str
        What the message calls the database (``"MIMIC-III"``).
    folder : str
        What the message asks ``--data-dir`` to point at.

    Examples
    --------
    >>> import tempfile
    >>> find_tables(Path(tempfile.mkdtemp()), ["patient"], database="eICU",
    ...             folder="the eICU files")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tardiff.errors.DataError: eICU tables missing in ...: patient.csv(.gz); pass --data-dir to the eICU files
    """
    found = {name: find_table(data_dir, name) for name in tables}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise DataError(
            f"{database} tables missing in {data_dir}: {', '.join(f'{m}.csv(.gz)' for m in missing)}; "
            f"pass --data-dir to {folder}"
        )
    return list(found.values())


def table_finder(tables: Sequence[str], *, database: str, folder: str, module: str) -> Callable[[Path], list[Path]]:
    """A loader module's ``find_source_files(data_dir)``: :func:`find_tables` for its ``tables``.

    Examples
    --------
    >>> find = table_finder(("patient",), database="eICU", folder="the eICU files", module="tardiff.data.eicu")
    >>> find.__name__, find.__module__
    ('find_source_files', 'tardiff.data.eicu')
    """
    tables = tuple(tables)

    def find_source_files(data_dir: Path) -> list[Path]:
        return find_tables(data_dir, tables, database=database, folder=folder)

    find_source_files.__doc__ = (f"{', '.join(tables[:-1])} and {tables[-1]}" if len(tables) > 1 else tables[0]) + (
        " in ``data_dir``, or a DataError naming the missing ones (see :func:`tardiff.data.sources.find_tables`).")
    find_source_files.__module__ = module
    return find_source_files
