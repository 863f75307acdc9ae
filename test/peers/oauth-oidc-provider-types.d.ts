/**
 * The slice of oidc-provider 9's API the test peer uses. The package ships no type declarations,
 * and @types/oidc-provider lags behind its majors, so the peer declares what it touches.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
}
