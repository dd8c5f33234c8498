"""Delimited text files read as a stream: encoding and separator sniffed, columns found by header name.

Rows go through the ``csv`` module one at a time, so a national file of tens of millions of rows is read
with flat memory. Producers are not consistent (UTF-8 or Windows-1252, ``,`` or ``;``, quarterly column
changes), hence: the encoding is guessed from the first 64 KB (UTF-8 with or without BOM first, then
charset-normalizer), stray non-UTF-8 bytes in a UTF-8 file are read as Windows-1252 (ARCEP's sites files have
had some), and columns are looked up by name, never by position.

National files are mostly other départements' rows. ``rows(skip=CodeFilter(…))`` drops those before any
per-row Python work: the file is read in blocks of bytes, split into lines in C, and a line is dropped when
its commune code is plainly a code of elsewhere, without decoding or parsing it. Only a line that
cannot be misread that way is dropped: it starts a record (not inside a quoted field spanning lines), holds
no quote at all, no NUL, no more fields than the header. Every other line goes to the ``csv`` module as
before, so the rows kept, their line numbers, the rows rejected and their reasons are the same as without the
filter. Dropped lines are counted in ``skipped``.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from charset_normalizer import from_bytes

from geo_service.errors import ImportFileError

SAMPLE_BYTES = 1 << 16
# Bytes read at a time when lines are split and filtered as arrays: about ten times this in memory while a
# block is examined (the block, its copies, numpy's masks and positions), whatever the size of the file.
BLOCK_BYTES = 1 << 21
DELIMITERS = (";", ",", "\t", "|")
_FALLBACK = "geo_service.cp1252_fallback"
csv.field_size_limit(1 << 26)


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    """Decode the offending bytes of a mostly UTF-8 file as Windows-1252 instead of failing."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start:error.end]
    return bytes(bad).decode("cp1252", errors="replace"), error.end


codecs.register_error(_FALLBACK, _cp1252_fallback)


def sniff_encoding(sample: bytes) -> str:
    """``utf-8-sig``, ``utf-8`` or the best single-byte guess (Windows-1252 when in doubt)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        # An incremental decoder: the sample may end in the middle of a multi-byte character.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    # French producers' only other encodings: Windows-1252 and the ISO Latin ones (a wider list lets short
    # samples pass for Mac Roman or DOS code pages, turning « É » into « … »).
    best = from_bytes(sample, cp_isolation=["cp1252", "iso8859_15", "latin_1"]).best()
    # Latin-1 and Windows-1252 agree on letters; cp1252 also has the œ, €, ’ that French files use.
    return "cp1252" if best is None or best.encoding in ("latin_1", "iso8859_15") else best.encoding


def sniff_delimiter(header: str) -> str:
    """The separator that splits the header line most (``;`` wins a tie: French files)."""
    counts = {d: _count_outside_quotes(header, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ";"))
    if counts[best] == 0:
        raise ImportFileError("séparateur de colonnes introuvable dans la ligne d'en-tête "
                              "(attendu : « ; », « , », tabulation ou « | »)")
    return best


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


def normalise_header(name: str) -> str:
    """Header names as the importers look them up: trimmed, without BOM or quotes, lower case."""
    return name.replace("\ufeff", "").strip().strip('"').strip().lower()


class _Prefixed(io.RawIOBase):
    """The sample already read, followed by the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


@dataclass(frozen=True)
class CodeFilter:
    """Rows to drop before parsing: those whose column ``at`` holds exactly a commune code (five digits, or
    ``2A``/``2B`` and three digits) not starting with ``prefix`` (the territory's département). Anything else —
    an empty or odd code, ``1002.0``, `` 46042``, ``2a004`` — is parsed and judged as before."""

    at: int
    prefix: str


class CsvTable:
    """One delimited file: its dialect, its columns by name, and its rows as a stream of ``(line, values)``."""

    def __init__(self, stream: BinaryIO, label: str, *, delimiter: str | None = None, encoding: str | None = None):
        self.label = label
        sample = stream.read(SAMPLE_BYTES)
        if not sample.strip():
            raise ImportFileError(f"{label} : fichier vide")
        # Text files never hold NUL bytes (except UTF-16, which starts with its byte-order mark).
        if b"\x00" in sample and not sample.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ImportFileError(f"{label} : fichier binaire, un fichier texte délimité (CSV) est attendu")
        self.encoding = encoding or sniff_encoding(sample)
        self._errors = _FALLBACK if self.encoding.startswith("utf-8") else "replace"
        binary = io.BufferedReader(_Prefixed(sample, stream), 1 << 20)
        first_line = sample.decode(self.encoding, errors="replace").splitlines()[0] if sample else ""
        self.delimiter = delimiter or sniff_delimiter(first_line)
        # Lines are split as bytes when the encoding keeps ASCII bytes as they are (all but UTF-16).
        self._by_bytes = not self.encoding.startswith("utf-16")
        self._skip: CodeFilter | None = None
        self._record_line: int | None = None  # where the record the csv reader is reading starts
        self._last_line = 0  # the last line handed to the csv reader
        self._block_lines = 0  # lines of the block being read
        self.skipped = 0
        lines = self._byte_lines(binary) if self._by_bytes else self._text_lines(binary)
        self._reader = csv.reader(lines, delimiter=self.delimiter)
        try:
            header = next(self._reader)
        except (StopIteration, csv.Error) as exc:
            raise ImportFileError(f"{label} : ligne d'en-tête illisible") from exc
        self._record_line = None
        self.header = [h.replace("\ufeff", "").strip() for h in header]
        self.columns = {}
        for i, name in enumerate(self.header):
            self.columns.setdefault(normalise_header(name), i)
        self.width = len(self.header)
        self.truncated = False

    def _text_lines(self, binary: io.BufferedReader) -> Iterator[str]:
        """Lines decoded by a text stream (UTF-16), each numbered; no line is dropped."""
        text = io.TextIOWrapper(binary, encoding=self.encoding, errors=self._errors, newline="")
        for number, line in enumerate(text, start=1):
            if self._record_line is None:
                self._record_line = number
            self._last_line = number
            yield line

    def _byte_lines(self, binary: io.BufferedReader) -> Iterator[str]:
        """Lines split as bytes (``\\n``, ``\\r\\n`` or ``\\r``, as a text stream would), decoded one by one; with
        a ``skip`` filter, lines of elsewhere are dropped undecoded (see the module's note)."""
        number, rest, header = 0, b"", True
        encoding = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        while True:
            block = binary.read(BLOCK_BYTES)
            if block:
                block = rest + block
                # Cut after the last line end; a final \r may be the first half of \r\n: keep it for the next block.
                cut = block.rfind(b"\n") + 1 or block.rfind(b"\r", 0, len(block) - 1) + 1
                if not cut:
                    rest = block
                    continue
                block, rest = block[:cut], block[cut:]
            elif rest:
                block, rest = rest, b""
            else:
                return
            if header:
                # The header line carries the byte-order mark, if any; the others are plain UTF-8.
                first = block.splitlines(keepends=True)[0]
                number = self._record_line = self._last_line = 1
                yield first.decode(self.encoding, self._errors)
                block, header = block[len(first):], False
            for line_number, raw in self._kept(block, number):
                if self._record_line is None:
                    self._record_line = line_number
                self._last_line = line_number
                yield raw.decode(encoding, self._errors)
            number += self._block_lines

    def _kept(self, block: bytes, number: int) -> Iterator[tuple[int, bytes]]:
        """``(line number, line)`` of the block's lines that go to the csv reader; the others are counted as
        skipped. ``number``: the line before the block."""
        skip = self._skip
        self._block_lines = 0
        if not block:
            return
        # Without a filter, or with a NUL or a lone \r inside, every line goes to the csv module (which knows
        # what to say about those bytes), split as a text stream would.
        if skip is None or b"\x00" in block or (b"\r" in block and block.count(b"\r") != block.count(b"\r\n")):
            lines = block.splitlines(keepends=True)
            self._block_lines = len(lines)
            yield from enumerate(lines, start=number + 1)
            return
        starts, stops, drop = self._droppable(block, skip)
        self._block_lines = len(drop)
        previous = -1
        for k in np.flatnonzero(~drop).tolist() + [len(drop)]:
            # The dropped lines before line k: only while no record is being read (a record spanning lines
            # takes its continuation lines, whatever they look like).
            j = previous + 1
            while j < k and self._record_line is not None:
                yield number + 1 + j, block[starts[j]:stops[j]]
                j += 1
            self.skipped += k - j
            if k < len(drop):
                yield number + 1 + k, block[starts[k]:stops[k]]
            previous = k

    def _droppable(self, block: bytes, skip: CodeFilter) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Starts and ends of the block's lines, and which ones are plainly of elsewhere: no quote, no more
        fields than the header, the code column exactly a commune code not of the prefix (``CodeFilter``).
        Computed on the bytes as arrays (numpy), not line by line."""
        data = np.frombuffer(block, dtype=np.uint8)
        stops = np.flatnonzero(data == 10) + 1
        if len(data) and data[-1] != 10:
            stops = np.append(stops, len(data))
        starts = np.concatenate(([0], stops[:-1]))
        separators = np.flatnonzero(data == ord(self.delimiter))
        first = np.searchsorted(separators, starts)
        count = np.searchsorted(separators, stops) - first
        at, last = skip.at, max(len(separators) - 1, 0)
        candidates = (count >= at) & (count < self.width)
        if not len(separators):
            separators = np.zeros(1, dtype=np.int64)
        code_start = starts if at == 0 else separators[np.minimum(first + at - 1, last)] + 1
        ends_with_newline = data[stops - 1] == 10
        content_end = stops - ends_with_newline - (ends_with_newline & (data[np.maximum(stops - 2, 0)] == 13))
        code_end = np.where(count > at, separators[np.minimum(first + at, last)], content_end)
        drop = candidates & (code_end - code_start == 5)
        top = len(data) - 1
        prefix = skip.prefix.encode("ascii")
        mine = np.ones(len(stops), dtype=bool)
        for k in range(5):
            byte = data[np.minimum(code_start + k, top)]
            digit = (byte >= 48) & (byte <= 57)
            # Corsica: 2A… and 2B… (upper case, as insee_code makes them)
            drop &= (digit | (byte == 65) | (byte == 66)) if k == 1 else digit
            if k < len(prefix):
                mine &= byte == prefix[k]
        drop &= ~mine
        quotes = np.flatnonzero(data == 34)
        if len(quotes):
            drop[np.searchsorted(stops, quotes, side="right")] = False
        return starts, stops, drop

    @property
    def dialect_note(self) -> str:
        """« encodage utf-8, séparateur ; » for the summary."""
        sep = {"\t": "tabulation"}.get(self.delimiter, f"« {self.delimiter} »")
        return f"encodage {self.encoding}, séparateur {sep}"

    def has(self, name: str) -> bool:
        return name in self.columns

    def first(self, *names: str) -> str | None:
        """The first of ``names`` that is a column of the file (producers renamed columns between vintages)."""
        return next((n for n in names if n in self.columns), None)

    def require(self, *groups: str | Sequence[str]) -> None:
        """Refuse the file if a required column is missing; a group ``("x", "imb_x")`` needs one of its names."""
        missing = []
        for group in groups:
            names = (group,) if isinstance(group, str) else tuple(group)
            if not any(n in self.columns for n in names):
                missing.append(" ou ".join(names))
        if missing:
            read = ", ".join(self.header[:40]) + (" …" if len(self.header) > 40 else "")
            raise ImportFileError(f"{self.label} : colonne(s) manquante(s) : {', '.join(missing)} "
                                  f"(colonnes lues : {read}). Le fichier est-il du bon type ?")

    def index(self, name: str | None) -> int | None:
        return None if name is None else self.columns.get(name)

    def rows(self, on_bad_width=None, *, max_rows: int | None = None, skip: CodeFilter | None = None
             ) -> Iterator[tuple[int, list[str]]]:
        """``(line, values)`` per record; ``line`` is the file line where the record starts (header = 1).

        Short rows are padded (some producers drop trailing empty fields); long ones are handed to
        ``on_bad_width(line, count)`` and skipped. With ``max_rows``, reading stops after that many records,
        blank lines counted as records (a file of millions of empty lines is not read to its end), and
        ``truncated`` tells that the file had more. ``skip``: rows plainly of elsewhere are dropped unparsed
        and counted in ``skipped`` (files read as bytes; see the module's note).
        """
        reader, width = self._reader, self.width
        self._skip = skip
        seen = 0
        try:
            for values in reader:
                line, self._record_line = self._record_line or 0, None
                seen += 1
                if max_rows is not None and seen > max_rows:
                    self.truncated = True
                    return
                n = len(values)
                if n == width:
                    yield line, values
                elif n == 0 or (n == 1 and not values[0].strip()):
                    continue
                elif n < width:
                    yield line, values + [""] * (width - n)
                elif on_bad_width is not None:
                    on_bad_width(line, n)
        except csv.Error as exc:
            raise ImportFileError(f"{self.label}, ligne {self._last_line} : CSV illisible ({exc})") from exc
        finally:
            self._skip = None

    def record(self, values: list[str], names: Sequence[str] | None = None) -> dict[str, str]:
        """The row as ``{column: value}`` (all columns, or only ``names`` that exist), values trimmed."""
        if names is None:
            return {name: values[i].strip() for name, i in self.columns.items()}
        return {n: values[self.columns[n]].strip() for n in names if n in self.columns}
