// Structured logs: one JSON object per line on stdout (or a given stream), ISO time, level as a word.
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  name?: string;
  /** Where lines go; stdout when absent. Tests pass a stream to read the lines back. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: options.name ?? "weft",
      level: options.level ?? "info",
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
