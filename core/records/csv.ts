/**
 * Minimal RFC 4180 CSV: header row, fields quoted when they hold a comma, a quote or a
 * leading/trailing space. Newlines inside fields are refused so that every record is one
 * line, which keeps append-only logs recoverable after a crash (a torn last line is dropped).
 * @module
 */

import { InputError } from "../errors.ts";

/** A CSV record: column name to string value. */
export type CsvRecord = Record<string, string>;

/** Thrown when a field cannot be written as one CSV line. */
export class CsvFieldError extends InputError {}

/** Quotes one field as needed. Throws {@linkcode CsvFieldError} on a newline. */
function formatCsvField(value: string): string {
  if (/[\r\n]/.test(value)) {
    throw new CsvFieldError(`a CSV field may not hold a line break: ${JSON.stringify(value)}`);
  }
  if (/[",]|^\s|\s$/.test(value)) return `"${value.replaceAll('"', '""')}"`;
  return value;
}

/** Formats one record as a line (with a trailing newline) in the order of `columns`. */
export function formatCsvLine(columns: readonly string[], record: CsvRecord): string {
  return columns.map((c) => formatCsvField(record[c] ?? "")).join(",") + "\n";
}

/**
 * Formats a whole table as text chunks of about `rowsPerChunk` lines each (header first), so
 * that a large table can be written without building one string of all of it.
 */
export function* formatCsvChunks<T>(
  columns: readonly string[],
  rows: Iterable<T>,
  toRecord: (row: T) => CsvRecord,
  rowsPerChunk = 4096,
): Generator<string> {
  let parts = [columns.map(formatCsvField).join(",") + "\n"];
  for (const row of rows) {
    parts.push(formatCsvLine(columns, toRecord(row)));
    if (parts.length >= rowsPerChunk) {
      yield parts.join("");
      parts = [];
    }
  }
  if (parts.length > 0) yield parts.join("");
}

/** Parses one CSV line into fields, or returns null when the line is malformed. */
export function parseCsvLine(line: string): string[] | null {
  const fields: string[] = [];
  let i = 0;
  while (true) {
    if (line[i] === '"') {
      let value = "";
      i++;
      while (true) {
        const q = line.indexOf('"', i);
        if (q < 0) return null;
        value += line.slice(i, q);
        if (line[q + 1] === '"') {
          value += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      fields.push(value);
      if (i === line.length) return fields;
      if (line[i] !== ",") return null;
      i++;
    } else {
      const comma = line.indexOf(",", i);
      if (comma < 0) {
        fields.push(line.slice(i));
        return fields;
      }
      fields.push(line.slice(i, comma));
      i = comma + 1;
    }
  }
}

/** Result of {@linkcode parseCsv}. */
export interface ParsedCsv {
  /** Column names from the header. */
  columns: string[];
  /** Records, keyed by column name. */
  records: CsvRecord[];
  /** 1-based line numbers of lines that did not parse or had the wrong field count. */
  badLines: number[];
  /** True when the text did not end with a newline (a torn last line, dropped). */
  tornTail: boolean;
}

/**
 * Parses CSV text with a header line. A last line without its newline is treated as torn
 * (an interrupted append) and dropped; malformed lines are listed in `badLines`.
 */
export function parseCsv(text: string): ParsedCsv {
  const lines = text.split("\n");
  const tornTail = lines.length > 0 && lines[lines.length - 1] !== "";
  lines.pop();
  if (lines.length === 0) return { columns: [], records: [], badLines: [], tornTail };
  const columns = parseCsvLine(lines[0].replace(/\r$/, "")) ?? [];
  const records: CsvRecord[] = [];
  const badLines: number[] = [];
  for (let n = 1; n < lines.length; n++) {
    const line = lines[n].replace(/\r$/, "");
    if (line === "") continue;
    const fields = parseCsvLine(line);
    if (fields === null || fields.length !== columns.length) {
      badLines.push(n + 1);
      continue;
    }
    const record: CsvRecord = {};
    for (let c = 0; c < columns.length; c++) record[columns[c]] = fields[c];
    records.push(record);
  }
  return { columns, records, badLines, tornTail };
}

/**
 * Checks that `columns` holds every name of `required`; throws {@linkcode InputError}
 * naming the file and the missing columns otherwise.
 */
export function requireColumns(
  path: string,
  columns: readonly string[],
  required: readonly string[],
): void {
  const missing = required.filter((c) => !columns.includes(c));
  if (missing.length > 0) {
    throw new InputError(
      `${path}: missing column(s) ${missing.join(", ")} (header is: ${columns.join(",")})`,
    );
  }
}
