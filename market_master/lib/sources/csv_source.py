"""Per-symbol CSV files of 1-hour bars (Yahoo-style columns, case-insensitive).

Columns: `Datetime` or `Date` (or `timestamp`), Open, High, Low, Close, Volume; `Adj Close` and any other
column are ignored. Timestamps with a UTC offset are converted to New York; naive ones are read in the
declared `timezone` first. Errors name the symbol, the file and, for a bad value, its line and column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from market_master.lib.bars import BAR_COLUMNS, VALUE_COLUMNS, normalize_bars
from market_master.lib.calendar import TZ, TimeLike, range_bounds
from market_master.lib.sources import DataSourceError

TIME_COLUMNS = ("datetime", "date", "timestamp")
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


class CsvSource:
    """Reads `<directory>/<pattern with {symbol}>` per symbol."""

    name = "csv"

    def __init__(self, directory: Path | str, timezone: str = TZ, pattern: str = "{symbol}_1h.csv") -> None:
        if "{symbol}" not in pattern:
            raise ValueError(f"pattern {pattern!r} must contain '{{symbol}}'")
        self.directory = Path(directory)
        self.timezone = timezone
        self.pattern = pattern

    def path_for(self, symbol: str) -> Path:
        return self.directory / self.pattern.format(symbol=symbol)

    def available_symbols(self) -> list[str]:
        """Symbols that have a file matching the pattern, sorted."""
        prefix, suffix = self.pattern.split("{symbol}", 1)
        rx = re.compile(re.escape(prefix) + r"(.+)" + re.escape(suffix) + r"$")
        found = (rx.match(p.name) for p in self.directory.glob(prefix + "*" + suffix))
        return sorted(m.group(1) for m in found if m)

    def read_symbol(self, symbol: str) -> pd.DataFrame:
        """Every row of the symbol's file as canonical bars (nothing dropped)."""
        return self.read_symbol_with_lines(symbol).drop(columns=["line"])

    def read_symbol_with_lines(self, symbol: str) -> pd.DataFrame:
        """Canonical bars plus ``line``: each row's 1-based line in the file (the header is line 1)."""
        path = self.path_for(symbol)
        if not path.is_file():
            raise DataSourceError(symbol, f"no CSV file for {symbol}: looked at {path}")
        raw = self._read_text_csv(symbol, path)
        by_lower = {str(c).strip().lower(): c for c in raw.columns}
        time_col = next((by_lower[c] for c in TIME_COLUMNS if c in by_lower), None)
        if time_col is None:
            raise DataSourceError(
                symbol, f"{path}: missing column 'Datetime' (or 'Date'); columns found: {list(raw.columns)}"
            )
        for col in VALUE_COLUMNS:
            if col not in by_lower:
                raise DataSourceError(
                    symbol, f"{path}: missing column {col.capitalize()!r}; columns found: {list(raw.columns)}"
                )
        if raw.empty:
            raise DataSourceError(
                symbol, f"{path}: no data rows (header only: {list(raw.columns)}); expected bars from line 2"
            )
        frame = {"symbol": symbol, "timestamp": self._parse_times(symbol, path, raw[time_col], time_col)}
        for col in VALUE_COLUMNS:
            frame[col] = self._parse_numbers(symbol, path, raw[by_lower[col]], by_lower[col])
        lines = raw.index.to_numpy() + 2  # header = line 1, first data row = line 2
        table = pd.DataFrame(frame, columns=BAR_COLUMNS).assign(line=lines)
        table = table.sort_values(["symbol", "timestamp"], kind="mergesort")  # normalize_bars' order
        bars = normalize_bars(table)
        bars["line"] = table["line"].to_numpy()
        return bars

    def _read_text_csv(self, symbol: str, path: Path) -> pd.DataFrame:
        """The file as text cells; an empty, binary or malformed file is a DataSourceError naming it."""
        head = path.read_bytes()[:4096]
        if not head.strip():
            raise DataSourceError(symbol, f"{path}: the file is empty (expected a header line and bars)")
        if b"\x00" in head or head.startswith(b"\x89PNG"):
            raise DataSourceError(symbol, f"{path}: not a text CSV file (binary content at line 1)")
        try:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
        except UnicodeDecodeError as exc:
            raise DataSourceError(symbol, f"{path}: not a UTF-8 text CSV file ({exc.reason})") from exc
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataSourceError(symbol, f"{path}: cannot be read as CSV: {exc}") from exc
        return raw[~(raw == "").all(axis=1)]  # blank lines; the index keeps each row's line - 2

    def fetch(
        self, symbols: Sequence[str], start: TimeLike | None = None, end: TimeLike | None = None
    ) -> pd.DataFrame:
        """Canonical bars of `symbols` with start <= timestamp <= end (None = unbounded)."""
        return self.fetch_with_lines(symbols, start, end).drop(columns=["file", "line"])

    def fetch_with_lines(
        self, symbols: Sequence[str], start: TimeLike | None = None, end: TimeLike | None = None
    ) -> pd.DataFrame:
        """`fetch` plus each row's origin: ``file`` (path) and ``line`` (1-based, header = line 1)."""
        frames = []
        for symbol in symbols:
            bars = self.read_symbol_with_lines(symbol)
            lo, hi = range_bounds(start or "1900-01-01", end or "2200-01-01")
            in_range = bars[(bars["timestamp"] >= lo) & (bars["timestamp"] <= hi)]
            if in_range.empty:
                span = f"{bars['timestamp'].min()} .. {bars['timestamp'].max()}"
                asked = f"[{start or 'start of file'}, {end or 'end of file'}]"
                raise DataSourceError(
                    symbol, f"{self.path_for(symbol)} has no bars in {asked} (file covers {span})"
                )
            frames.append(in_range.assign(file=str(self.path_for(symbol))))
        if not frames:
            raise ValueError("no symbols requested")
        table = pd.concat(frames, ignore_index=True)
        table = table.sort_values(["symbol", "timestamp"], kind="mergesort")
        out = normalize_bars(table)
        out["file"] = table["file"].to_numpy()
        out["line"] = table["line"].to_numpy()
        return out

    def _parse_numbers(self, symbol: str, path: Path, values: pd.Series, column: str) -> np.ndarray:
        text = values.str.strip()
        numbers = pd.to_numeric(text.replace("", np.nan), errors="coerce")
        bad = numbers.isna() & (text != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataSourceError(
                symbol,
                f"{path}: line {int(values.index[i]) + 2}, column {column!r}: cannot parse "
                f"{values.iloc[i]!r} as a number",
            )
        return numbers.to_numpy(dtype="float64")

    def _parse_times(self, symbol: str, path: Path, values: pd.Series, column: str) -> pd.DatetimeIndex:
        text = values.str.strip()
        aware = text.str.contains(_OFFSET)
        stamps = pd.Series(pd.NaT, index=text.index, dtype=f"datetime64[ns, {TZ}]")
        if aware.any():
            parsed = pd.to_datetime(text[aware], utc=True, errors="coerce", format="ISO8601")
            stamps[aware] = parsed.dt.tz_convert(TZ)
        if (~aware).any():
            parsed = pd.to_datetime(text[~aware], errors="coerce", format="ISO8601")
            try:
                local = parsed.dt.tz_localize(self.timezone, ambiguous="raise", nonexistent="raise")
            except Exception as exc:  # noqa: BLE001 - pytz's NonExistent/AmbiguousTimeError are bare Exceptions
                line, value = self._first_unlocalizable(parsed, values)
                raise DataSourceError(
                    symbol,
                    f"{path}: line {line}, column {column!r}: {value!r} is not a valid {self.timezone} time ({exc})",
                ) from exc
            stamps[~aware] = local.dt.tz_convert(TZ)
        bad = stamps.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataSourceError(
                symbol,
                f"{path}: line {int(values.index[i]) + 2}, column {column!r}: cannot parse "
                f"{values.iloc[i]!r} as a timestamp",
            )
        return pd.DatetimeIndex(stamps)

    def _first_unlocalizable(self, parsed: pd.Series, values: pd.Series) -> tuple[int | str, str]:
        """(line, raw value) of the first naive time that does not exist or is ambiguous in the timezone."""
        for label, stamp in parsed.items():
            if pd.isna(stamp):
                continue
            try:
                stamp.tz_localize(self.timezone, ambiguous="raise", nonexistent="raise")
            except Exception:  # noqa: BLE001 - see _parse_times
                return int(label) + 2, str(values.loc[label])
        return "?", ""
