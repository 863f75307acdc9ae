/** The logger the token code writes to, and a view of it that adds fixed fields (the account). */
export interface AuthLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export function withLogContext(logger: AuthLogger, context: object): AuthLogger {
  return {
    info: (obj, msg) => logger.info({ ...context, ...obj }, msg),
    warn: (obj, msg) => logger.warn({ ...context, ...obj }, msg),
    error: (obj, msg) => logger.error({ ...context, ...obj }, msg),
  };
}
