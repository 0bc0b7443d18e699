import winston from 'winston';

/** Structured JSON logs, one line per decision; callers pass identities and reasons as fields. */
export function createLogger(level: string): winston.Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { component: 'svid-operator' },
    transports: [new winston.transports.Console({ stderrLevels: [] })],
  });
}
