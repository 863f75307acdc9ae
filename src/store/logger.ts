/** The slice of a pino logger the store uses; pino's Logger satisfies it. */
export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const ignore = (): void => undefined;
export const silentLogger: StoreLogger = { info: ignore, warn: ignore, error: ignore };
